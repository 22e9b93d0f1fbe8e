import { readFileSync } from 'node:fs';

/** The gateway's version, from package.json (shipped in the image next to src/). */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
