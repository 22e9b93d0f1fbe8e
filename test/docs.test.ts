import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ENVIRONMENT_VARIABLES } from '../src/config/config.js';
import { createMetrics } from '../src/metrics/metrics.js';

const operations = readFileSync(new URL('../docs/OPERATIONS.md', import.meta.url), 'utf8');
const section = (heading: string) => {
  const start = operations.indexOf(`\n## ${heading}\n`);
  expect(start, `docs/OPERATIONS.md has a "## ${heading}" section`).toBeGreaterThan(-1);
  const end = operations.indexOf('\n## ', start + 1);
  return operations.slice(start, end === -1 ? undefined : end);
};

describe('docs/OPERATIONS.md stays true to the code', () => {
  it('documents every environment variable in its configuration table', () => {
    const table = section('Configuration');
    const missing = ENVIRONMENT_VARIABLES.filter((name) => !table.includes(`\`${name}\``));
    expect(missing).toEqual([]);
  });

  it('explains every tidings_* metric', async () => {
    const metrics = createMetrics();
    const names = (await metrics.registry.getMetricsAsJSON()).map((metric) => metric.name).filter((name) => name.startsWith('tidings_'));
    expect(names.length).toBeGreaterThan(10);
    const documented = section('Health, metrics, stats and logs');
    expect(names.filter((name) => !documented.includes(`\`${name}\``))).toEqual([]);
  });
});
