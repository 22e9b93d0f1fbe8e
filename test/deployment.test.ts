/**
 * What can be checked of the deployment files without a Docker engine:
 *
 * - Dockerfile: multi-stage; the runtime stage's node_modules come from `npm ci --omit=dev`;
 *   every path it copies exists in a clean clone (not git-ignored) and reaches the build context
 *   (not docker-ignored); every `COPY --from` path is produced by its stage; a non-root USER; a
 *   HEALTHCHECK on /health; CMD is exactly `npm start`'s command; and the runtime image holds
 *   everything that command loads (the sources' relative imports stay inside what is copied,
 *   their packages are production dependencies).
 * - deploy/nginx.conf: `nginx -t` passes (Debian's nginx, /usr/sbin/nginx), and the settings a
 *   realtime gateway needs are in effect where they matter (nginx's header inheritance drops
 *   every server-level proxy_set_header in a location that sets one of its own).
 * - compose.yaml: parses; Redis, two gateways from this Dockerfile with distinct INSTANCE_IDs,
 *   the proxy in front of exactly those gateways, health checks and depends_on conditions.
 */
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, posix, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../src/config/config.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const NGINX = '/usr/sbin/nginx';

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

interface PackageJson {
  readonly type?: string;
  readonly scripts: Record<string, string>;
  readonly dependencies: Record<string, string>;
  readonly devDependencies?: Record<string, string>;
  readonly workspaces?: readonly string[];
}
const packageJson = JSON.parse(read('package.json')) as PackageJson;

// ---------------------------------------------------------------------------------------------
// Dockerfile
// ---------------------------------------------------------------------------------------------

interface Instruction {
  readonly keyword: string;
  /** Everything after the keyword, continuation lines joined. */
  readonly rest: string;
  readonly line: number;
}

interface Stage {
  readonly name: string | undefined;
  /** The image after global ARG defaults are substituted. */
  readonly image: string;
  readonly instructions: Instruction[];
}

/** Splits a Dockerfile into instructions: comments dropped, `\` continuations joined. */
function dockerInstructions(text: string): Instruction[] {
  const instructions: Instruction[] = [];
  let buffer = '';
  let startLine = 0;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trimEnd();
    if (/^\s*#/.test(line) || (buffer === '' && line.trim() === '')) return;
    if (buffer === '') startLine = index + 1;
    if (line.endsWith('\\')) {
      buffer += `${line.slice(0, -1)} `;
      return;
    }
    buffer += line;
    const match = /^\s*(\w+)\s*(.*)$/s.exec(buffer);
    if (match?.[1] !== undefined) instructions.push({ keyword: match[1].toUpperCase(), rest: (match[2] ?? '').trim(), line: startLine });
    buffer = '';
  });
  return instructions;
}

function dockerStages(text: string): { stages: Stage[]; globalArgs: Map<string, string> } {
  const globalArgs = new Map<string, string>();
  const stages: Stage[] = [];
  const substitute = (value: string) =>
    value.replace(/\$\{?(\w+)\}?/g, (whole, name: string) => globalArgs.get(name) ?? whole);
  for (const instruction of dockerInstructions(text)) {
    if (instruction.keyword === 'FROM') {
      const [image = '', as, name] = instruction.rest.replace(/--\S+\s+/g, '').split(/\s+/);
      stages.push({ name: as?.toUpperCase() === 'AS' ? name : undefined, image: substitute(image), instructions: [] });
    } else if (stages.length === 0) {
      if (instruction.keyword !== 'ARG') throw new Error(`Dockerfile line ${instruction.line}: only ARG may come before FROM`);
      const [name = '', ...value] = instruction.rest.split('=');
      globalArgs.set(name.trim(), value.join('=').trim().replace(/^"(.*)"$/, '$1'));
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return { stages, globalArgs };
}

/** `--flag=value` options at the start of an instruction, and what follows them. */
function splitFlags(rest: string): { flags: Map<string, string>; body: string } {
  const flags = new Map<string, string>();
  let body = rest;
  for (let match = /^--([\w-]+)(?:=(\S*))?\s+/.exec(body); match; match = /^--([\w-]+)(?:=(\S*))?\s+/.exec(body)) {
    flags.set(match[1] ?? '', match[2] ?? '');
    body = body.slice(match[0].length);
  }
  return { flags, body };
}

/** Exec form (a JSON array) or undefined for the shell form. */
function execForm(body: string): string[] | undefined {
  if (!body.trimStart().startsWith('[')) return undefined;
  const parsed: unknown = JSON.parse(body);
  if (!Array.isArray(parsed) || !parsed.every((part) => typeof part === 'string')) throw new Error(`not a JSON string array: ${body}`);
  return parsed as string[];
}

interface Copy {
  readonly from: string | undefined;
  readonly sources: string[];
  /** Absolute, resolved against the stage's WORKDIR. */
  readonly destination: string;
  /** The sources go into the destination directory (several sources, or a trailing /). */
  readonly intoDirectory: boolean;
  readonly line: number;
}

/** Walks a stage: its COPY instructions with absolute destinations, and its WORKDIR at each RUN. */
function walkStage(stage: Stage): { copies: Copy[]; runs: { command: string; workdir: string }[]; workdir: string } {
  let workdir = '/';
  const copies: Copy[] = [];
  const runs: { command: string; workdir: string }[] = [];
  for (const instruction of stage.instructions) {
    if (instruction.keyword === 'WORKDIR') workdir = posix.resolve(workdir, instruction.rest);
    if (instruction.keyword === 'RUN') runs.push({ command: splitFlags(instruction.rest).body, workdir });
    if (instruction.keyword === 'COPY' || instruction.keyword === 'ADD') {
      const { flags, body } = splitFlags(instruction.rest);
      const parts = execForm(body) ?? body.split(/\s+/);
      const destination = parts.at(-1) ?? '';
      copies.push({
        from: flags.get('from'),
        sources: parts.slice(0, -1),
        destination: posix.resolve(workdir, destination),
        intoDirectory: parts.length > 2 || destination.endsWith('/'),
        line: instruction.line,
      });
    }
  }
  return { copies, runs, workdir };
}

/** Where a copied source lands: into a directory destination (ends with /) or as it. */
function landing(copy: Copy, source: string): string {
  return copy.intoDirectory ? posix.join(copy.destination, posix.basename(source)) : copy.destination;
}

/** `npm ci` with --omit=dev (and no --include=dev) in a RUN command. */
function isProductionNpmCi(command: string): boolean {
  return /\bnpm\s+ci\b/.test(command) && /--omit[= ]dev\b/.test(command) && !/--include[= ]dev\b/.test(command);
}

/** Any npm command that would (re)install packages, production-only or not. */
function installsPackages(command: string): boolean {
  return /\bnpm\s+(ci|install|i|add|update)\b/.test(command);
}

const dockerfileText = read('Dockerfile');
const { stages } = dockerStages(dockerfileText);
const finalStage = stages.at(-1);
if (!finalStage) throw new Error('Dockerfile has no FROM');
const final = walkStage(finalStage);
const stageByName = (name: string) => stages.find((stage) => stage.name === name);

function instructionsOf(stage: Stage, keyword: string): Instruction[] {
  return stage.instructions.filter((instruction) => instruction.keyword === keyword);
}

// ---------------------------------------------------------------------------------------------
// .dockerignore (Docker's semantics: last matching pattern wins, `!` re-includes, a pattern that
// matches a parent directory excludes everything under it)
// ---------------------------------------------------------------------------------------------

function dockerignorePatterns(): { pattern: RegExp; exception: boolean }[] {
  if (!existsSync(join(ROOT, '.dockerignore'))) return [];
  return read('.dockerignore')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const exception = line.startsWith('!');
      const cleaned = posix.normalize(line.slice(exception ? 1 : 0).trim()).replace(/^\/+/, '').replace(/\/+$/, '');
      let regex = '';
      for (let index = 0; index < cleaned.length; index += 1) {
        const char = cleaned[index] ?? '';
        if (char === '*' && cleaned[index + 1] === '*') {
          // `**/` matches any number of directories (none too); a trailing `**` matches everything.
          regex += cleaned[index + 2] === '/' ? '(?:.*/)?' : '.*';
          index += cleaned[index + 2] === '/' ? 2 : 1;
        } else if (char === '*') regex += '[^/]*';
        else if (char === '?') regex += '[^/]';
        else regex += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
      }
      return { pattern: new RegExp(`^${regex}$`), exception };
    });
}

function isDockerIgnored(path: string): boolean {
  const segments = posix.normalize(path).replace(/^\.\//, '').replace(/\/$/, '').split('/');
  const candidates = segments.map((_, index) => segments.slice(0, index + 1).join('/'));
  let ignored = false;
  for (const { pattern, exception } of dockerignorePatterns()) {
    if (candidates.some((candidate) => pattern.test(candidate))) ignored = !exception;
  }
  return ignored;
}

function filesUnder(path: string): string[] {
  const absolute = join(ROOT, path);
  if (!statSync(absolute).isDirectory()) return [path];
  return readdirSync(absolute, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(ROOT, join(entry.parentPath, entry.name)).split('\\').join('/'));
}

function isGitIgnored(path: string): boolean {
  const result = spawnSync('git', ['-c', 'safe.directory=*', 'check-ignore', '-q', '--no-index', '--', path], { cwd: ROOT });
  if (result.status === 0) return true;
  if (result.status === 1) return false;
  throw new Error(`git check-ignore ${path} failed: ${result.error?.message ?? result.stderr.toString()}`);
}

// ---------------------------------------------------------------------------------------------
// Imports of the sources the image runs
// ---------------------------------------------------------------------------------------------

/** Module specifiers a file loads at run time (type-only imports and exports are erased). */
function runtimeImports(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const specifiers: string[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node) && !node.importClause?.isTypeOnly && ts.isStringLiteral(node.moduleSpecifier)) {
      specifiers.push(node.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(node) && !node.isTypeOnly && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      specifiers.push(node.moduleSpecifier.text);
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] !== undefined &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      specifiers.push(node.arguments[0].text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return specifiers;
}

const packageName = (specifier: string) => specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/');
const isBuiltin = (specifier: string) => specifier.startsWith('node:') || builtinModules.includes(packageName(specifier));

/** Where `npm run build` (tsc -p tsconfig.build.json) compiles to, and from. */
const buildOptions = (ts.readConfigFile(join(ROOT, 'tsconfig.build.json'), ts.sys.readFile).config as { compilerOptions: { outDir: string; rootDir: string } })
  .compilerOptions;
const isBuildRun = (command: string) => /\bnpm run build\b/.test(command);

/** Repo-relative paths the runtime stage copies from the build context. */
const contextPathsInImage = final.copies.filter((copy) => copy.from === undefined).flatMap((copy) => copy.sources.map((source) => posix.normalize(source).replace(/\/$/, '')));
const isInImage = (repoPath: string) => contextPathsInImage.some((path) => repoPath === path || repoPath.startsWith(`${path}/`));

describe('Dockerfile', () => {
  it('is multi-stage, and every stage it copies from is declared before', () => {
    expect(stages.length, 'at least a dependency stage and a runtime stage').toBeGreaterThanOrEqual(2);
    stages.forEach((stage, index) => {
      for (const copy of walkStage(stage).copies.filter((c) => c.from !== undefined)) {
        const source = stages.findIndex((candidate) => candidate.name === copy.from);
        expect(source, `line ${copy.line}: COPY --from=${copy.from} names an earlier stage`).toBeGreaterThanOrEqual(0);
        expect(source).toBeLessThan(index);
      }
    });
  });

  it("gets the runtime stage's dependencies from `npm ci --omit=dev` and nothing else", () => {
    const target = posix.join(final.workdir, 'node_modules');
    const ownInstall = final.runs.filter((run) => installsPackages(run.command));
    const copied = final.copies.filter((copy) => copy.from !== undefined && copy.sources.some((source) => landing(copy, source) === target));
    expect(ownInstall.length + copied.length, `${target} comes from exactly one place`).toBe(1);
    if (ownInstall[0]) {
      expect(isProductionNpmCi(ownInstall[0].command), ownInstall[0].command).toBe(true);
      expect(ownInstall[0].workdir).toBe(final.workdir);
    } else {
      const copy = copied[0] as Copy;
      const stage = stageByName(copy.from as string) as Stage;
      const { runs } = walkStage(stage);
      const installs = runs.filter((run) => installsPackages(run.command));
      expect(installs.length, `stage ${stage.name} installs packages once`).toBe(1);
      const install = installs[0] as { command: string; workdir: string };
      expect(isProductionNpmCi(install.command), `stage ${stage.name}: ${install.command}`).toBe(true);
      expect(copy.sources, 'the node_modules npm ci created').toEqual([posix.join(install.workdir, 'node_modules')]);
      // Native modules (esbuild's binary) must run where they were installed.
      expect(stage.image, 'dependency stage and runtime stage use the same base image').toBe(finalStage.image);
    }
  });

  it('copies what `npm ci` needs next to the lockfile: package.json of the root and of every workspace', () => {
    // npm ci checks package-lock.json against the package.json files it finds.
    const installStage = stages.find((stage) => walkStage(stage).runs.some((run) => isProductionNpmCi(run.command))) as Stage;
    const walked = walkStage(installStage);
    const landed = walked.copies.filter((copy) => copy.from === undefined).flatMap((copy) => copy.sources.map((source) => landing(copy, source)));
    const needed = ['package.json', 'package-lock.json', ...(packageJson.workspaces ?? []).map((workspace) => `${workspace}/package.json`)];
    for (const file of needed) expect(landed, `${file} is copied into ${walked.workdir}`).toContain(posix.join(walked.workdir, file));
  });

  it('copies only paths that exist in a clean clone and reach the build context', () => {
    const sources = stages.flatMap((stage) => walkStage(stage).copies.filter((copy) => copy.from === undefined).flatMap((copy) => copy.sources));
    expect(sources.length).toBeGreaterThan(0);
    for (const source of sources) {
      expect(source, 'no globs or paths outside the context').toMatch(/^(?!\/|\.\.)[\w./-]+$/);
      expect(existsSync(join(ROOT, source)), `${source} exists`).toBe(true);
      expect(isGitIgnored(source), `${source} is not git-ignored (build output is absent in a clean clone)`).toBe(false);
      const ignored = filesUnder(source).filter((file) => isDockerIgnored(file));
      expect(ignored, `.dockerignore must not exclude what COPY ${source} needs`).toEqual([]);
    }
  });

  it('keeps secrets, local installs and VCS data out of the build context', () => {
    expect(existsSync(join(ROOT, '.dockerignore'))).toBe(true);
    for (const path of ['.env', '.git/config', 'node_modules/tsx/package.json', 'client/node_modules/x', 'client/app/dist/index.html', 'test-artifacts/a.png']) {
      expect(isDockerIgnored(path), path).toBe(true);
    }
  });

  it('copies from other stages only what those stages produce', () => {
    for (const copy of final.copies.filter((c) => c.from !== undefined)) {
      const { copies, runs } = walkStage(stageByName(copy.from as string) as Stage);
      const produced = [
        ...copies.flatMap((c) => c.sources.map((source) => landing(c, source))),
        ...runs.filter((run) => isProductionNpmCi(run.command)).map((run) => posix.join(run.workdir, 'node_modules')),
        ...runs.filter((run) => isBuildRun(run.command)).map((run) => posix.join(run.workdir, buildOptions.outDir)),
      ];
      for (const source of copy.sources) {
        expect(produced.some((path) => source === path || source.startsWith(`${path}/`)), `line ${copy.line}: ${source} exists in stage ${copy.from}`).toBe(true);
      }
    }
  });

  it('runs exactly the `npm start` command, in exec form, from the WORKDIR the sources are in', () => {
    const cmds = instructionsOf(finalStage, 'CMD');
    expect(cmds).toHaveLength(1);
    expect(instructionsOf(finalStage, 'ENTRYPOINT'), 'no ENTRYPOINT wrapping the command').toHaveLength(0);
    const command = execForm((cmds[0] as Instruction).rest);
    expect(command, 'exec form, so node is PID 1 and gets SIGTERM').toBeDefined();
    expect(command).toEqual((packageJson.scripts['start'] ?? '').trim().split(/\s+/));
  });

  it('contains everything the start command loads, with dependencies npm ci --omit=dev installs', () => {
    const command = (packageJson.scripts['start'] ?? '').trim().split(/\s+/);
    expect(command[0]).toBe('node');
    const entry = command.find((part) => /\.[cm]?[jt]s$/.test(part)) as string;
    // The sources the entry is built from, and where they must be for the image to hold it.
    let sourceEntry = entry;
    let isAvailable = isInImage;
    if (entry.startsWith(`${buildOptions.outDir}/`)) {
      // Compiled: the runtime stage copies the build stage's output; that stage copies the sources.
      const copy = final.copies.find((c) => c.from !== undefined && c.sources.some((source) => source.endsWith(`/${buildOptions.outDir}`)));
      expect(copy, `the runtime stage copies ${buildOptions.outDir}/ from a build stage`).toBeDefined();
      const build = walkStage(stageByName((copy as Copy).from as string) as Stage);
      expect(build.runs.some((run) => isBuildRun(run.command)), 'that stage runs npm run build').toBe(true);
      expect((copy as Copy).sources).toEqual([posix.join(build.workdir, buildOptions.outDir)]);
      expect(landing(copy as Copy, (copy as Copy).sources[0] as string)).toBe(posix.join(final.workdir, buildOptions.outDir));
      const buildContext = build.copies.filter((c) => c.from === undefined).flatMap((c) => c.sources.map((source) => posix.normalize(source).replace(/\/$/, '')));
      isAvailable = (repoPath) => buildContext.some((path) => repoPath === path || repoPath.startsWith(`${path}/`));
      for (const config of ['tsconfig.json', 'tsconfig.build.json']) expect(isAvailable(config), `${config} is copied into the build stage`).toBe(true);
      sourceEntry = `${buildOptions.rootDir}/${entry.slice(buildOptions.outDir.length + 1)}`.replace(/\.js$/, '.ts');
    }
    expect(isAvailable(sourceEntry), `${sourceEntry} is copied`).toBe(true);
    expect(isInImage('package.json'), 'package.json ("type": "module") is copied').toBe(true);
    const preloads = command.flatMap((part, index) => (part === '--import' || part === '--require' ? [command[index + 1] ?? ''] : []));
    for (const preload of preloads) expect(Object.keys(packageJson.dependencies), `${preload} is a production dependency`).toContain(packageName(preload));

    // Follow the entry file's imports through the sources.
    const seen = new Set<string>();
    const queue = [join(ROOT, sourceEntry)];
    const problems: string[] = [];
    while (queue.length > 0) {
      const file = queue.pop() as string;
      if (seen.has(file)) continue;
      seen.add(file);
      for (const specifier of runtimeImports(file)) {
        const from = relative(ROOT, file);
        if (specifier.startsWith('.')) {
          const target = join(dirname(file), specifier).replace(/\.js$/, '.ts');
          const repoPath = relative(ROOT, target).split('\\').join('/');
          if (!existsSync(target)) problems.push(`${from}: ${specifier} does not resolve`);
          else if (!isAvailable(repoPath)) problems.push(`${from}: ${specifier} (${repoPath}) is not copied into the image`);
          else queue.push(target);
        } else if (!isBuiltin(specifier) && !(packageName(specifier) in packageJson.dependencies)) {
          problems.push(`${from}: ${specifier} is not in "dependencies" (npm ci --omit=dev leaves it out)`);
        }
      }
    }
    expect(seen.size, 'the import graph was followed').toBeGreaterThan(20);
    expect(problems).toEqual([]);
  });

  it('runs as a non-root user', () => {
    const users = instructionsOf(finalStage, 'USER');
    expect(users.length, 'the runtime stage sets USER').toBeGreaterThan(0);
    const user = (users.at(-1) as Instruction).rest.split(':')[0];
    expect(['root', '0', ''], `USER ${user}`).not.toContain(user);
    const cmdIndex = finalStage.instructions.findIndex((instruction) => instruction.keyword === 'CMD');
    expect(finalStage.instructions.indexOf(users.at(-1) as Instruction)).toBeLessThan(cmdIndex);
  });

  it('has a HEALTHCHECK on the liveness endpoint, on the exposed port', () => {
    const checks = instructionsOf(finalStage, 'HEALTHCHECK');
    expect(checks).toHaveLength(1);
    const { body } = splitFlags((checks[0] as Instruction).rest);
    expect(body).toMatch(/^CMD\s/);
    expect(body, 'liveness, not readiness: a Redis outage must not get containers replaced').toMatch(/\/health\b/);
    const exposed = instructionsOf(finalStage, 'EXPOSE').flatMap((instruction) => instruction.rest.split(/\s+/));
    // The client port the health check probes, and the operator listener's default port.
    expect(exposed).toEqual(['4000', '9464']);
    expect(body).toContain('process.env.PORT||4000');
  });
});

// ---------------------------------------------------------------------------------------------
// compose.yaml
// ---------------------------------------------------------------------------------------------

interface ComposeService {
  readonly image?: string;
  readonly build?: string | { readonly context?: string; readonly dockerfile?: string };
  readonly environment?: Record<string, string> | string[];
  readonly depends_on?: Record<string, { readonly condition?: string }> | string[];
  readonly healthcheck?: { readonly test?: string[] | string };
  readonly volumes?: string[];
  readonly ports?: string[];
  readonly stop_grace_period?: string;
}

const compose = parseYaml(read('compose.yaml'), { merge: true }) as { services?: Record<string, ComposeService> };
const services = compose.services ?? {};
const gatewayNames = Object.keys(services).filter((name) => services[name]?.build !== undefined);
const proxyName = Object.keys(services).find((name) => (services[name]?.volumes ?? []).some((volume) => volume.startsWith('./deploy/nginx.conf:')));

function environmentOf(service: ComposeService): Record<string, string> {
  const environment = service.environment ?? {};
  if (!Array.isArray(environment)) return Object.fromEntries(Object.entries(environment).map(([key, value]) => [key, String(value)]));
  return Object.fromEntries(environment.map((entry) => [entry.split('=')[0] ?? '', entry.split('=').slice(1).join('=')]));
}

function dependsOnHealthy(service: ComposeService, name: string): boolean {
  const dependsOn = service.depends_on;
  return dependsOn !== undefined && !Array.isArray(dependsOn) && dependsOn[name]?.condition === 'service_healthy';
}

/** Compose durations such as 20s, 1m30s, 1500ms, in milliseconds. */
function durationMs(value: string): number {
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1, us: 0.001 };
  const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(h|ms|m|s|us)/g)];
  if (parts.length === 0 || parts.map((part) => part[0]).join('') !== value) throw new Error(`not a duration: ${value}`);
  return parts.reduce((total, part) => total + Number(part[1]) * (units[part[2] ?? ''] ?? Number.NaN), 0);
}

describe('compose.yaml', () => {
  it('runs Redis, two gateways built from this Dockerfile and a proxy', () => {
    expect(services['redis']?.image).toMatch(/^redis:/);
    expect(services['redis']?.healthcheck?.test, 'Redis has a health check').toBeDefined();
    expect(gatewayNames.length).toBeGreaterThanOrEqual(2);
    for (const name of gatewayNames) {
      const service = services[name] as ComposeService;
      const build = typeof service.build === 'string' ? { context: service.build } : (service.build ?? {});
      expect(posix.normalize(build.context ?? '.'), `${name} builds this repository`).toBe('.');
      expect(build.dockerfile ?? 'Dockerfile').toBe('Dockerfile');
      expect(dependsOnHealthy(service, 'redis'), `${name} waits for a healthy Redis`).toBe(true);
    }
    expect(new Set(gatewayNames.map((name) => services[name]?.image)).size, 'one image for every gateway').toBe(1);
    expect(proxyName, 'a service mounts ./deploy/nginx.conf').toBeDefined();
  });

  it('configures the gateways for production on the shared Redis, each with its own INSTANCE_ID', () => {
    const environments = gatewayNames.map((name) => environmentOf(services[name] as ComposeService));
    for (const environment of environments) {
      expect(environment['NODE_ENV']).toBe('production');
      expect(environment['REDIS_URL']).toBe('redis://redis:6379');
      expect(environment['JWT_SECRET'], 'JWT_SECRET comes from the environment and is marked required').toMatch(/^\$\{JWT_SECRET:\?.+\}$/);
      expect(environment['INSTANCE_ID']).toBeTruthy();
    }
    expect(new Set(environments.map((environment) => environment['INSTANCE_ID'])).size).toBe(gatewayNames.length);
  });

  it('runs RabbitMQ with a required password, and the gateways consume it without waiting for it', () => {
    const rabbitmq = services['rabbitmq'] as ComposeService;
    expect(rabbitmq.image).toMatch(/^rabbitmq:/);
    expect(rabbitmq.healthcheck?.test, 'RabbitMQ has a health check').toBeDefined();
    expect(environmentOf(rabbitmq)['RABBITMQ_DEFAULT_PASS']).toMatch(/^\$\{RABBITMQ_PASSWORD:\?.+\}$/);
    // Only the management UI leaves the compose network, and only to the host's loopback.
    expect(rabbitmq.ports ?? []).toEqual(['127.0.0.1:15672:15672']);
    for (const name of gatewayNames) {
      const service = services[name] as ComposeService;
      const environment = environmentOf(service);
      const user = environmentOf(rabbitmq)['RABBITMQ_DEFAULT_USER'];
      expect(environment['AMQP_URL']).toBe(`amqp://${user}:\${RABBITMQ_PASSWORD:?RABBITMQ_PASSWORD is required}@rabbitmq:5672`);
      expect(environment['AMQP_BOOKING_CURRENCY']).toMatch(/^[A-Z]{3}$/);
      const dependsOn = service.depends_on as Record<string, { condition?: string }>;
      expect(dependsOn['rabbitmq']?.condition, `${name} starts without waiting for a healthy broker`).toBe('service_started');
      // The variables load as the gateway reads them (compose substitutes the password).
      const resolved = Object.fromEntries(Object.entries(environment).map(([key, value]) => [key, value.replace(/\$\{RABBITMQ_PASSWORD:\?[^}]*\}/, 'hex0123').replace(/\$\{JWT_SECRET:\?[^}]*\}/, 'x'.repeat(40)).replace(/\$\{(\w+):-([^}]*)\}/g, '$2')]));
      expect(loadConfig(resolved).amqp).toMatchObject({ url: 'amqp://tidings:hex0123@rabbitmq:5672', exchange: 'tidings_events', bookingCurrency: 'EUR' });
    }
  });

  it('offers Jaeger in the observability profile, and tracing stays off unless its endpoint is exported', () => {
    const jaeger = services['jaeger'] as ComposeService & { profiles?: string[] };
    expect(jaeger.image).toMatch(/^jaegertracing\/all-in-one:/);
    expect(jaeger.profiles).toEqual(['observability']);
    expect(environmentOf(jaeger)['COLLECTOR_OTLP_ENABLED']).toBe('true');
    expect(jaeger.ports ?? []).toEqual(['127.0.0.1:16686:16686']);
    for (const name of gatewayNames) {
      const environment = environmentOf(services[name] as ComposeService);
      expect(environment['OTEL_EXPORTER_OTLP_ENDPOINT']).toBe('${OTEL_EXPORTER_OTLP_ENDPOINT:-}');
      // Unset, the default is empty, which the gateway reads as unset: no tracing.
      const unset = Object.fromEntries(Object.entries(environment).map(([key, value]) => [key, value.replace(/\$\{RABBITMQ_PASSWORD:\?[^}]*\}/, 'hex0123').replace(/\$\{JWT_SECRET:\?[^}]*\}/, 'x'.repeat(40)).replace(/\$\{(\w+):-([^}]*)\}/g, '$2')]));
      expect(loadConfig(unset).tracing).toBeUndefined();
      expect(loadConfig({ ...unset, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://jaeger:4318' }).tracing?.endpoint).toBe('http://jaeger:4318/v1/traces');
    }
  });

  it('gives a gateway longer to stop than its SHUTDOWN_TIMEOUT_MS', () => {
    for (const name of gatewayNames) {
      const service = services[name] as ComposeService;
      const shutdownMs = Number(environmentOf(service)['SHUTDOWN_TIMEOUT_MS'] ?? 10_000);
      // Docker's default is 10 s, the same as the gateway's default SHUTDOWN_TIMEOUT_MS.
      expect(durationMs(service.stop_grace_period ?? '10s'), name).toBeGreaterThan(shutdownMs);
    }
  });

  it('starts the proxy after healthy gateways, publishes it, and checks its health', () => {
    const proxy = services[proxyName ?? ''] as ComposeService;
    expect(proxy.image).toMatch(/^nginx:/);
    expect(proxy.volumes).toContain('./deploy/nginx.conf:/etc/nginx/nginx.conf:ro');
    for (const name of gatewayNames) expect(dependsOnHealthy(proxy, name), `proxy waits for ${name}`).toBe(true);
    expect(proxy.ports?.length).toBeGreaterThan(0);
    expect(JSON.stringify(proxy.healthcheck?.test)).toContain('/proxy-health');
  });
});

// ---------------------------------------------------------------------------------------------
// deploy/nginx.conf
// ---------------------------------------------------------------------------------------------

interface Directive {
  readonly name: string;
  readonly args: string[];
  readonly block: Directive[] | undefined;
}

/** A small nginx config parser: directives, arguments (quotes removed), blocks; comments dropped. */
function parseNginx(text: string): Directive[] {
  type Token = { readonly punct: '{' | '}' | ';'; readonly word?: undefined } | { readonly word: string; readonly punct?: undefined };
  const tokens = [...text.matchAll(/#[^\n]*|"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)'|([{};])|([^\s{};"'#]+)/g)].flatMap((match): Token[] => {
    if (match[0].startsWith('#')) return [];
    if (match[3] !== undefined) return [{ punct: match[3] as '{' | '}' | ';' }];
    return [{ word: match[1] ?? match[2] ?? match[4] ?? '' }];
  });
  let position = 0;
  const parseBlock = (): Directive[] => {
    const directives: Directive[] = [];
    let words: string[] = [];
    while (position < tokens.length) {
      const token = tokens[position++] as Token;
      if (token.word !== undefined) words.push(token.word);
      else if (token.punct === ';') {
        directives.push({ name: words[0] ?? '', args: words.slice(1), block: undefined });
        words = [];
      } else if (token.punct === '{') {
        directives.push({ name: words[0] ?? '', args: words.slice(1), block: parseBlock() });
        words = [];
      } else return directives;
    }
    return directives;
  };
  return parseBlock();
}

const nginxText = read('deploy/nginx.conf');
const nginxConfig = parseNginx(nginxText);
const find = (directives: Directive[] | undefined, name: string) => (directives ?? []).filter((directive) => directive.name === name);
const http = find(nginxConfig, 'http')[0];
const upstreams = find(http?.block, 'upstream');
const server = find(http?.block, 'server')[0];
const location = (path: string) => find(server?.block, 'location').find((directive) => directive.args.join(' ') === `= ${path}`);

/**
 * The occurrences of a directive in effect in a location: nginx takes the innermost level that
 * sets it and ignores the outer levels entirely (for proxy_set_header too).
 */
function effective(path: string, name: string): string[][] {
  for (const level of [location(path)?.block, server?.block, http?.block]) {
    const found = find(level, name);
    if (found.length > 0) return found.map((directive) => directive.args);
  }
  return [];
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** nginx time values (1h, 30m, 3600s, 3600) in seconds. */
function seconds(value: string | undefined): number {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(value ?? '');
  if (!match) return Number.NaN;
  const unit = { ms: 0.001, s: 1, m: 60, h: 3_600, d: 86_400 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * unit;
}

describe('deploy/nginx.conf', () => {
  const temporary = mkdtempSync(join(tmpdir(), 'tidings-nginx-'));
  afterAll(() => rmSync(temporary, { recursive: true, force: true }));

  /**
   * nginx -t resolves upstream host names, and the compose service names only resolve on
   * Docker's network: the copy points them at 127.0.0.1. nginx -t also binds the listen
   * addresses, so the copy listens on a free loopback port instead of 80. Temp and log paths go
   * to a temporary directory: the check needs no root and touches nothing outside it.
   */
  function nginxTest(config: string, port: number): { ok: boolean; output: string } {
    if (!existsSync(NGINX)) {
      throw new Error(`${NGINX} is missing: install Debian's nginx (apt-get install nginx) to check deploy/nginx.conf; scripts/test.sh (the README's test command, which .ci/run runs) installs it.`);
    }
    let copy = config;
    for (const name of gatewayNames) copy = copy.replace(new RegExp(`(\\bserver\\s+)${name}(:\\d+)`, 'g'), '$1127.0.0.1$2');
    copy = copy.replace(/^(\s*listen\s+)[^;\s]+/gm, `$1127.0.0.1:${port}`);
    copy = copy.replace(/\baccess_log\s+\/dev\/stdout\b/g, `access_log ${temporary}/access.log`);
    const temporaryPaths = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `${kind}_temp_path ${temporary}/${kind};`).join(' ');
    copy = copy.replace(/^http\s*\{/m, (opening) => `${opening} ${temporaryPaths}`);
    const file = join(temporary, 'nginx.conf');
    writeFileSync(file, copy);
    const result = spawnSync(NGINX, ['-t', '-q', '-p', `${temporary}/`, '-c', file, '-g', `pid ${temporary}/nginx.pid; error_log stderr;`], { encoding: 'utf8' });
    if (result.error) throw result.error;
    return { ok: result.status === 0, output: `${result.stdout}${result.stderr}` };
  }

  it('passes nginx -t', async () => {
    const { ok, output } = nginxTest(nginxText, await freePort());
    expect(output).toBe('');
    expect(ok).toBe(true);
  });

  it('fails nginx -t when the config is broken (the check is real)', async () => {
    const { ok, output } = nginxTest(nginxText.replace(/^http\s*\{/m, '$& no_such_directive on;'), await freePort());
    expect(ok).toBe(false);
    expect(output).toContain('unknown directive "no_such_directive"');
  });

  it('balances over exactly the compose gateways, on the port they listen on', () => {
    expect(upstreams).toHaveLength(1);
    const upstreamName = (upstreams[0] as Directive).args[0];
    const servers = find((upstreams[0] as Directive).block, 'server').map((directive) => directive.args[0]);
    const ports = gatewayNames.map((name) => environmentOf(services[name] as ComposeService)['PORT'] ?? '4000');
    expect(servers.sort()).toEqual(gatewayNames.map((name, index) => `${name}:${ports[index]}`).sort());
    for (const path of ['/graphql', '/health', '/ready']) {
      expect(effective(path, 'proxy_pass'), `${path} goes to the gateways`).toEqual([[`http://${upstreamName}`]]);
    }
    expect(find(server?.block, 'listen').map((directive) => directive.args[0])).toContain('80');
    expect(services[proxyName ?? '']?.ports?.some((port) => port.endsWith(':80'))).toBe(true);
  });

  it('upgrades WebSockets and passes the client address on /graphql and the health endpoints', () => {
    const map = find(http?.block, 'map').find((directive) => directive.args.join(' ') === '$http_upgrade $connection_upgrade');
    expect(map, 'map $http_upgrade $connection_upgrade').toBeDefined();
    expect(find(map?.block, 'default')[0]?.args).toEqual(['upgrade']);
    for (const path of ['/graphql', '/health', '/ready']) {
      expect(effective(path, 'proxy_http_version')).toEqual([['1.1']]);
      const headers = effective(path, 'proxy_set_header').map(([name, value]) => `${name?.toLowerCase()} ${value}`);
      expect(headers, path).toEqual(
        expect.arrayContaining(['x-forwarded-for $proxy_add_x_forwarded_for', 'host $host', 'x-forwarded-proto $scheme']),
      );
      if (path === '/graphql') expect(headers).toEqual(expect.arrayContaining(['upgrade $http_upgrade', 'connection $connection_upgrade']));
    }
  });

  it('streams SSE unbuffered and keeps subscriptions open far longer than the keep-alive pings', () => {
    expect(effective('/graphql', 'proxy_buffering')).toEqual([['off']]);
    // The gateway pings WebSockets every 12 s (WS_KEEP_ALIVE_MS) and SSE streams every 12 s.
    expect(seconds(effective('/graphql', 'proxy_read_timeout')[0]?.[0])).toBeGreaterThanOrEqual(3_600);
    expect(seconds(effective('/graphql', 'proxy_send_timeout')[0]?.[0])).toBeGreaterThanOrEqual(3_600);
  });

  it('answers its own health check and exposes nothing but the gateway endpoints', () => {
    expect(find(location('/proxy-health')?.block, 'return')[0]?.args[0]).toBe('200');
    const catchAll = find(server?.block, 'location').find((directive) => directive.args.join(' ') === '/');
    expect(find(catchAll?.block, 'return')[0]?.args).toEqual(['404']);
    const proxied = find(server?.block, 'location').filter((directive) => find(directive.block, 'proxy_pass').length > 0);
    expect(proxied.map((directive) => directive.args.join(' ')).sort()).toEqual(['= /graphql', '= /health', '= /ready']);
  });
});
