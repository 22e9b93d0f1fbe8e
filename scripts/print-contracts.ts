/** Writes docs/channels/*.schema.json from the event contracts: `npm run contracts:print`. */
import { writeFileSync } from 'node:fs';
import { allEventJsonSchemas } from '../src/events/json-schemas.js';

for (const { file, content } of allEventJsonSchemas()) {
  writeFileSync(new URL(`../${file}`, import.meta.url), content);
  process.stdout.write(`${file}\n`);
}
