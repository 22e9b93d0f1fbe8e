import { spawnSync } from 'node:child_process';
import { accessSync, chmodSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

/**
 * The one test command: README "Test it" gives it, .ci/run runs exactly it, and scripts/test.sh
 * installs every Debian package whose binary the tests run (derived here from test/, so a test
 * that starts a new binary fails this one until the script installs it). The script runs here
 * with a PATH and a system root of the test's own; nothing is installed.
 */

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const SCRIPT = 'scripts/test.sh';
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

/** What the README assumes is there before its command runs: Node.js with npm. */
const ASSUMED = new Set(['node', 'npm']);

/** A markdown section from its `## heading` to the next one. */
function readmeSection(heading: string): string {
  const readme = read('README.md');
  const start = readme.indexOf(`\n## ${heading}\n`);
  expect(start, `README.md has a "## ${heading}" section`).toBeGreaterThan(-1);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end === -1 ? undefined : end);
}

/** The commands of the first ```sh block of a README section. */
function shellBlock(heading: string): string[] {
  const block = /```sh\n([\s\S]*?)```/.exec(readmeSection(heading))?.[1];
  expect(block, `README "${heading}" has a sh block`).toBeDefined();
  return (block as string)
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0);
}

interface Requirement {
  /** A path (must be executable) or a name looked up on PATH. */
  readonly binary: string;
  readonly packageName: string;
}

/** The script's `need BINARY PACKAGE` lines; `"${VAR:-default}"` counts as its default. */
function requirements(): Requirement[] {
  return [...read(SCRIPT).matchAll(/^need\s+(\S+)\s+(\S+)\s*$/gm)].map(([, binary, packageName]) => ({
    binary: (binary as string).replace(/^"(.*)"$/, '$1').replace(/^\$\{\w+:-(.*)\}$/, '$1'),
    packageName: packageName as string,
  }));
}

function filesUnder(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
    const path = join(directory, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' || entry.name === 'dist' ? [] : filesUnder(path);
    return /\.(ts|tsx|mts|mjs|js)$/.test(entry.name) ? [path] : [];
  });
}

/**
 * Every binary test/ runs or points at: absolute system paths in string literals (Chromium's
 * executablePath, nginx, RabbitMQ's script), and the first argument of every child_process call
 * (a string literal, a constant holding one, or process.execPath). A call whose binary cannot be
 * read from the source is reported, so that it cannot slip past.
 */
function binariesTheTestsRun(): { binaries: Map<string, Set<string>>; unreadable: string[] } {
  const binaries = new Map<string, Set<string>>();
  const unreadable: string[] = [];
  const note = (binary: string, file: string) => binaries.set(binary, (binaries.get(binary) ?? new Set()).add(file));
  const self = fileURLToPath(import.meta.url);
  for (const path of filesUnder(join(ROOT, 'test')).filter((path) => path !== self)) {
    const file = relative(ROOT, path);
    const source = readFileSync(path, 'utf8');
    for (const [, literal] of source.matchAll(/['"`](\/(?:usr|bin|sbin|opt|snap)\/[^'"`\s$]+)['"`]/g)) note(literal as string, file);
    // Aliases such as `const run = promisify(execFile)`, and `promisify(execFile)(binary, …)` itself.
    const callers = ['spawnSync', 'spawn', 'execFileSync', 'execFile', 'execSync', ...[...source.matchAll(/\b(?:const|let)\s+(\w+)\s*=\s*promisify\(\s*(?:execFile|exec)\s*\)/g)].map((match) => match[1] as string)];
    const call = new RegExp(`(?:(?<![.\\w])(?:${callers.join('|')})|promisify\\(\\s*(?:execFile|exec)\\s*\\))\\s*\\(\\s*([^,)]+?)\\s*[,)]`, 'g');
    for (const [, argument] of source.matchAll(call)) {
      const expression = argument as string;
      const literal = /^(['"`])([^'"`$]+)\1$/.exec(expression)?.[2];
      const constant = /^\w+$/.test(expression)
        ? new RegExp(`\\b(?:const|let)\\s+${expression}\\b[^=]*=\\s*(?:process\\.env\\[[^\\]]+\\]\\s*\\?\\?\\s*)?(['"\`])([^'"\`$]+)\\1`).exec(source)?.[2]
        : undefined;
      if (expression === 'process.execPath') note('node', file);
      else if (literal ?? constant) note((literal ?? constant) as string, file);
      else unreadable.push(`${file}: runs ${expression}`);
    }
  }
  return { binaries, unreadable };
}

function findOnPath(name: string): string {
  for (const directory of (process.env['PATH'] ?? '').split(delimiter)) {
    const candidate = join(directory, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error(`${name} is not on PATH`);
}
const BASH = findOnPath('bash');

const scratch = mkdtempSync(join(tmpdir(), 'tidings-test-command-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let machines = 0;

function executable(path: string, body: string) {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
}

/**
 * A pretend machine: a system root and a PATH directory holding stand-ins for the binaries of
 * `present` (by requirement), plus whatever `extra` puts there. Returns how to run the script on it.
 */
function machine(present: readonly Requirement[], extra: (bin: string) => void = () => undefined) {
  const base = join(scratch, `machine-${++machines}`);
  const root = join(base, 'root');
  const bin = join(base, 'bin');
  mkdirSync(root, { recursive: true });
  mkdirSync(bin, { recursive: true });
  for (const { binary } of present) executable(binary.startsWith('/') ? join(root, binary) : join(bin, binary), 'exit 0');
  extra(bin);
  const log = join(base, 'calls.log');
  return {
    root,
    log,
    calls: () => (existsSync(log) ? readFileSync(log, 'utf8').trimEnd().split('\n') : []),
    run(args: readonly string[], env: Record<string, string> = {}) {
      const result = spawnSync(BASH, [join(ROOT, SCRIPT), ...args], {
        cwd: base,
        encoding: 'utf8',
        env: { PATH: bin, TIDINGS_SYSTEM_ROOT: root, CALLS_LOG: log, ...env },
        timeout: 30_000,
      });
      return { status: result.status, stdout: result.stdout, stderr: result.stderr };
    },
  };
}

/** Stand-ins that only write down how they were called; sudo runs what follows it. */
function recordingTools(bin: string, options: { npmTestExitCode?: number } = {}) {
  executable(join(bin, 'apt-get'), 'echo "apt-get DEBIAN_FRONTEND=$DEBIAN_FRONTEND $*" >> "$CALLS_LOG"');
  executable(join(bin, 'sudo'), 'echo "sudo $*" >> "$CALLS_LOG"\n[ "$1" = -n ] && shift\nexec "$@"');
  executable(join(bin, 'npm'), `echo "npm $*" >> "$CALLS_LOG"\n[ "$1" = test ] && exit ${options.npmTestExitCode ?? 0}\nexit 0`);
  // The script's own helpers, the real ones.
  for (const tool of ['env', 'sed']) symlinkSync(findOnPath(tool), join(bin, tool));
  symlinkSync(process.execPath, join(bin, 'node'));
}

describe('the test command', () => {
  it('is one command in README "Test it", and .ci/run runs exactly it from the repository root', () => {
    const commands = shellBlock('Test it');
    expect(commands).toEqual([SCRIPT]);
    const ciLines = read('.ci/run')
      .split('\n')
      .filter((line) => line.trim() !== '' && !line.startsWith('#'));
    expect(ciLines).toEqual([`cd "$(dirname "$0")/.." && exec ${commands[0]}`]);
    for (const path of ['.ci/run', SCRIPT]) expect(statSync(join(ROOT, path)).mode & 0o111, `${path} is executable`).toBe(0o111);
  });

  it('README says which Node.js it assumes, as package.json "engines" does', () => {
    const engines = (JSON.parse(read('package.json')) as { engines: { node: string } }).engines.node;
    const version = /^>=\s*(\d+(?:\.\d+)*)$/.exec(engines)?.[1];
    expect(version, `engines.node is ">=X.Y": ${engines}`).toBeDefined();
    for (const heading of ['Start it', 'Test it']) expect(readmeSection(heading)).toContain(`Node.js ${version as string} or newer`);
    // Starting the gateway needs nothing but Node.js and the npm install.
    expect(shellBlock('Start it')).toEqual(['npm ci', 'npm start']);
  });

  it('installs every binary the tests run, and checks nothing the tests do not use', () => {
    const { binaries, unreadable } = binariesTheTestsRun();
    expect(unreadable, 'child_process calls whose binary is not a string or a constant').toEqual([]);
    // The derivation finds what is known to be there (it is not silently empty).
    expect([...binaries.keys()]).toEqual(expect.arrayContaining(['redis-server', '/usr/bin/chromium', '/usr/sbin/nginx', 'promtool', 'node', 'npm']));
    const checked = new Set(requirements().map(({ binary }) => binary));
    const unchecked = [...binaries.keys()].filter((binary) => !ASSUMED.has(binary) && !checked.has(binary));
    expect(
      unchecked.map((binary) => `${binary} (${[...(binaries.get(binary) ?? [])].join(', ')})`),
      `binaries the tests run that ${SCRIPT} has no "need BINARY PACKAGE" line for`,
    ).toEqual([]);
    expect([...checked].filter((binary) => !binaries.has(binary)), `${SCRIPT} checks binaries no test runs`).toEqual([]);
  });

  it('--check names every missing package, in one line, and exits 1; it installs nothing', () => {
    const all = requirements();
    expect(all.map(({ packageName }) => packageName)).toEqual(expect.arrayContaining(['redis-server', 'rabbitmq-server', 'chromium', 'nginx', 'prometheus']));
    const bare = machine([], (bin) => recordingTools(bin));
    const result = bare.run(['--check']);
    expect(result).toEqual({ status: 1, stdout: `missing: ${all.map(({ packageName }) => packageName).join(' ')}\n`, stderr: '' });
    expect(bare.calls()).toEqual([]);
  });

  it.each(requirements().map((requirement) => [requirement.packageName, requirement] as const))('--check names %s alone when only its binary is missing', (packageName, missing) => {
    const result = machine(requirements().filter((requirement) => requirement.packageName !== missing.packageName)).run(['--check']);
    expect(result).toEqual({ status: 1, stdout: `missing: ${packageName}\n`, stderr: '' });
  });

  it('--check reports nothing missing when everything is there, and follows CHROMIUM_PATH as the browser tests do', () => {
    expect(machine(requirements()).run(['--check'])).toEqual({ status: 0, stdout: 'missing: none\n', stderr: '' });
    const elsewhere = machine(requirements().filter(({ packageName }) => packageName !== 'chromium'));
    executable(join(elsewhere.root, 'opt/chrome/chrome'), 'exit 0');
    expect(elsewhere.run(['--check'], { CHROMIUM_PATH: '/opt/chrome/chrome' })).toMatchObject({ status: 0, stdout: 'missing: none\n' });
  });

  it('installs only what is missing, without questions, then npm ci and npm test, exiting with npm test’s code', () => {
    const present = requirements().filter(({ packageName }) => !['chromium', 'nginx'].includes(packageName));
    const host = machine(present, (bin) => recordingTools(bin, { npmTestExitCode: 7 }));
    const result = host.run([]);
    expect(result.status, result.stderr).toBe(7);
    // As root apt-get runs directly; otherwise through sudo (non-interactive without a terminal).
    const asRoot = process.getuid?.() === 0 ? '' : 'sudo -n env DEBIAN_FRONTEND=noninteractive ';
    const apt = (args: string) => [...(asRoot ? [`${asRoot}apt-get ${args}`] : []), `apt-get DEBIAN_FRONTEND=noninteractive ${args}`];
    expect(host.calls()).toEqual([...apt('update -qq'), ...apt('install -y -qq chromium nginx'), 'npm ci --no-audit --no-fund', 'npm test']);
  });

  it('with nothing missing, runs npm ci and npm test only', () => {
    const host = machine(requirements(), (bin) => recordingTools(bin));
    expect(host.run([]).status).toBe(0);
    expect(host.calls()).toEqual(['npm ci --no-audit --no-fund', 'npm test']);
  });

  it('without apt-get, says exactly what to install and exits 1 before npm', () => {
    const host = machine(
      requirements().filter(({ packageName }) => packageName !== 'nginx'),
      (bin) => {
        recordingTools(bin);
        rmSync(join(bin, 'apt-get'));
      },
    );
    const result = host.run([]);
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('the tests need these Debian packages: nginx. Install them as root (apt-get install nginx)');
    expect(host.calls().filter((call) => call.startsWith('npm'))).toEqual([]);
  });

  it('refuses an unknown argument', () => {
    expect(machine(requirements()).run(['--install'])).toMatchObject({ status: 64, stderr: 'usage: scripts/test.sh [--check]\n' });
  });
});
