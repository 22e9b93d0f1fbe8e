import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

function filesUnder(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? filesUnder(join(directory, entry.name)) : entry.name.endsWith('.ts') ? [join(directory, entry.name)] : [],
  );
}

/** Which folders of src/ each folder imports from (type imports too: they are dependencies of the design). */
function folderEdges(): Map<string, Set<string>> {
  const edges = new Map<string, Set<string>>();
  for (const file of filesUnder(SRC)) {
    const folder = relative(SRC, file).split(sep)[0] as string;
    if (folder.endsWith('.ts')) continue; // app.ts, main.ts: the composition root wires everything
    for (const match of readFileSync(file, 'utf8').matchAll(/from '\.\.\/([a-z-]+)\//g)) {
      const target = match[1] as string;
      if (target === folder) continue;
      if (!edges.has(folder)) edges.set(folder, new Set());
      edges.get(folder)!.add(target);
    }
  }
  return edges;
}

describe('layers of src/', () => {
  it('has no import cycle between folders', () => {
    const edges = folderEdges();
    const cycles: string[] = [];
    const visit = (folder: string, path: string[]) => {
      for (const next of edges.get(folder) ?? []) {
        if (path.includes(next)) cycles.push([...path.slice(path.indexOf(next)), next].join(' -> '));
        else visit(next, [...path, next]);
      }
    };
    for (const folder of edges.keys()) visit(folder, [folder]);
    expect(cycles).toEqual([]);
  });

  it('never imports the transports from the schema or the server', () => {
    const edges = folderEdges();
    expect(edges.get('schema')?.has('transport') ?? false).toBe(false);
    expect(edges.get('server')?.has('transport') ?? false).toBe(false);
  });
});

describe('layers of client/src (@tidings/client)', () => {
  const CLIENT_SRC = fileURLToPath(new URL('../client/src/', import.meta.url));
  const manifest = JSON.parse(readFileSync(new URL('../client/package.json', import.meta.url), 'utf8')) as {
    dependencies: Record<string, string>;
    peerDependencies: Record<string, string>;
  };
  const clientFiles = readdirSync(CLIENT_SRC, { recursive: true, encoding: 'utf8' })
    .filter((name) => /\.tsx?$/.test(name))
    .map((name) => join(CLIENT_SRC, name));
  const importsOf = (file: string) => [...readFileSync(file, 'utf8').matchAll(/(?:from|import) '([^']+)'/g)].map((match) => match[1] as string);

  it('imports only its own files and the packages it declares: nothing of the gateway', () => {
    const declared = new Set([...Object.keys(manifest.dependencies), ...Object.keys(manifest.peerDependencies)]);
    const strays: string[] = [];
    for (const file of clientFiles) {
      for (const specifier of importsOf(file)) {
        if (specifier.startsWith('.')) {
          const target = join(file, '..', specifier);
          if (relative(CLIENT_SRC, target).startsWith('..')) strays.push(`${relative(CLIENT_SRC, file)}: ${specifier}`);
        } else {
          const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : (specifier.split('/')[0] as string);
          if (!declared.has(name)) strays.push(`${relative(CLIENT_SRC, file)}: ${specifier}`);
        }
      }
    }
    expect(clientFiles.length).toBeGreaterThan(5);
    expect(strays).toEqual([]);
  });

  it('keeps react and urql (optional peers) out of the framework-free core', () => {
    const core = clientFiles.filter((file) => !relative(CLIENT_SRC, file).startsWith(`react${sep}`));
    const offenders = core.flatMap((file) =>
      importsOf(file)
        .filter((specifier) => /^(react|react-dom|urql)(\/|$)/.test(specifier) || specifier.includes('/react/'))
        .map((specifier) => `${relative(CLIENT_SRC, file)}: ${specifier}`),
    );
    expect(offenders).toEqual([]);
  });
});
