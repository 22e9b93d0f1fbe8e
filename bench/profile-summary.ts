/**
 * Summarises a V8 CPU profile written by `npm run bench -- --cpu-prof` (bench/results/profiles/):
 * self time by package (node_modules/<name>, src/…, node internals) and the top functions.
 *
 *   node --import tsx bench/profile-summary.ts bench/results/profiles/<file>.cpuprofile [top] [fromS] [toS]
 *
 * fromS/toS keep only the samples taken that many seconds after the profile started (to separate
 * a scenario's connect phase from its delivery phase). Also lists inclusive (total) time: the
 * share of samples with the function anywhere on the stack.
 */
import { readFileSync } from 'node:fs';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
interface Profile {
  nodes: Node[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const file = process.argv[2];
if (!file) {
  process.stderr.write('usage: profile-summary.ts <file.cpuprofile> [top]\n');
  process.exit(2);
}
const top = Number(process.argv[3] ?? 25);
const fromMicros = Number(process.argv[4] ?? 0) * 1e6;
const toMicros = process.argv[5] === undefined ? Infinity : Number(process.argv[5]) * 1e6;
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const parentOf = new Map<number, number>();
for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
const selfMicros = new Map<number, number>();
const inclusive = new Map<string, number>();
let elapsed = 0;
for (let i = 0; i < profile.samples.length; i++) {
  elapsed += profile.timeDeltas[i] ?? 0;
  if (elapsed < fromMicros || elapsed > toMicros) continue;
  const id = profile.samples[i]!;
  const micros = profile.timeDeltas[i] ?? 0;
  selfMicros.set(id, (selfMicros.get(id) ?? 0) + micros);
  const seen = new Set<string>();
  for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) {
    const key = keyOf(byId.get(at)!);
    if (seen.has(key)) continue;
    seen.add(key);
    inclusive.set(key, (inclusive.get(key) ?? 0) + micros);
  }
}

function keyOf(node: Node): string {
  const { functionName, url, lineNumber } = node.callFrame;
  return `${functionName || '(anonymous)'} ${url ? `${url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/(src|bench)\//, '$1/')}:${lineNumber + 1}` : ''}`;
}

function packageOf(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : '(native)';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  const src = /\/(src\/[^/]+)\//.exec(url);
  if (src) return src[1]!;
  if (url.startsWith('node:')) return url;
  return url.replace(/^file:\/\/.*\/(?=[^/]+\/[^/]+$)/, '');
}

const packages = new Map<string, number>();
const functions = new Map<string, number>();
let total = 0;
for (const [id, micros] of selfMicros) {
  const node = byId.get(id)!;
  const { functionName, url } = node.callFrame;
  total += micros;
  const pkg = packageOf(url, functionName);
  packages.set(pkg, (packages.get(pkg) ?? 0) + micros);
  const key = keyOf(node);
  functions.set(key, (functions.get(key) ?? 0) + micros);
}

const pct = (micros: number) => `${((micros / total) * 100).toFixed(1).padStart(5)} %`;
process.stdout.write(`${file}: ${(total / 1e6).toFixed(2)} s sampled\n\nself time by package:\n`);
for (const [name, micros] of [...packages].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`  ${pct(micros)}  ${name}\n`);
process.stdout.write('\ntop functions (self time):\n');
for (const [name, micros] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`  ${pct(micros)}  ${name}\n`);
process.stdout.write('\ntotal time (function anywhere on the stack):\n');
for (const [name, micros] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, top)) process.stdout.write(`  ${pct(micros)}  ${name}\n`);
