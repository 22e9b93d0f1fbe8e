/** Writes schema.graphql from the Pothos builder: `npm run schema:print`. A test fails when it drifts. */
import { writeFileSync } from 'node:fs';
import { printSchemaSDL } from '../src/schema/index.js';

writeFileSync(new URL('../schema.graphql', import.meta.url), printSchemaSDL());
process.stdout.write('schema.graphql written\n');
