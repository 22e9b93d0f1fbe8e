import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { backendEnv } from './support/backends.js';
import { startGateway } from './support/gateway.js';

/**
 * The dashboard and alert rules that ship in deploy/: the rules pass Prometheus' own checks and
 * unit tests (Debian's `promtool`), every expression names only metrics a live gateway exports,
 * and every alert has its runbook entry.
 */
const ROOT = join(import.meta.dirname, '..');
const RULES = join(ROOT, 'deploy/prometheus/tidings-alerts.yml');
const DASHBOARD = join(ROOT, 'deploy/grafana/tidings-dashboard.json');

interface Dashboard {
  panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
}

/** Every metric name an expression reads: ours, Yoga's and the process' (`up` is Prometheus' own). */
function metricNamesIn(expression: string): string[] {
  return [...expression.matchAll(/\b(?:tidings|process|nodejs|graphql)_[a-z0-9_]+\b/g)].map((match) => match[0]);
}

/** The sample names a /metrics exposition can carry, from its TYPE lines. */
function exportedNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const line of exposition.split('\n')) {
    const [hash, keyword, name, type] = line.split(' ');
    if (hash !== '#' || keyword !== 'TYPE' || !name) continue;
    names.add(name);
    if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
    if (type === 'summary') for (const suffix of ['_sum', '_count']) names.add(name + suffix);
  }
  return names;
}

const alertNames = () => [...readFileSync(RULES, 'utf8').matchAll(/^\s*- alert: (\w+)$/gm)].map((match) => match[1]!);
const ruleExpressions = () => {
  // The rule file's `expr:` values: one line, or a folded block (`>`) of the lines below it.
  const lines = readFileSync(RULES, 'utf8').split('\n');
  const expressions: string[] = [];
  lines.forEach((line, index) => {
    const match = /^\s*expr: (.*)$/.exec(line);
    if (!match) return;
    if (match[1] !== '>') return void expressions.push(match[1]!);
    const block: string[] = [];
    for (let next = index + 1; next < lines.length && /^\s{10,}\S/.test(lines[next]!); next++) block.push(lines[next]!.trim());
    expressions.push(block.join(' '));
  });
  return expressions;
};

describe('operator assets in deploy/', () => {
  it('alert rules pass promtool check rules and their unit tests, firing and staying quiet', () => {
    const checked = execFileSync('promtool', ['check', 'rules', RULES], { encoding: 'utf8' });
    expect(checked).toContain(`SUCCESS: ${alertNames().length} rules found`);
    const tested = execFileSync('promtool', ['test', 'rules', 'tidings-alerts.test.yml'], { cwd: join(ROOT, 'deploy/prometheus'), encoding: 'utf8' });
    expect(tested).toContain('SUCCESS');
  });

  it('names only metrics a live gateway exports, in every dashboard panel and alert rule', async () => {
    const gateway = await startGateway(await backendEnv('redis'));
    const exported = exportedNames(await (await fetch(`${gateway.opsUrl}/metrics`)).text());
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
    const used = new Map<string, string>();
    for (const panel of dashboard.panels) for (const target of panel.targets) for (const name of metricNamesIn(target.expr)) used.set(name, `panel "${panel.title}"`);
    for (const expression of ruleExpressions()) for (const name of metricNamesIn(expression)) used.set(name, 'an alert rule');
    const unknown = [...used].filter(([name]) => !exported.has(name)).map(([name, where]) => `${name} (${where})`);
    expect(unknown).toEqual([]);
    // What the issue asks the dashboard to show, each by its metric.
    for (const name of ['tidings_connections', 'tidings_connected_users', 'tidings_subscriptions', 'tidings_events_published_total', 'tidings_events_delivered_total', 'tidings_events_dropped_total', 'tidings_delivery_latency_seconds_bucket', 'tidings_redis_up', 'tidings_limit_trips_total', 'process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_p99_seconds']) {
      expect(used.has(name), name).toBe(true);
    }
    expect(ruleExpressions()).toHaveLength(alertNames().length);
  });

  it('gives every alert a runbook entry in docs/OPERATIONS.md', () => {
    const operations = readFileSync(join(ROOT, 'docs/OPERATIONS.md'), 'utf8');
    const rules = readFileSync(RULES, 'utf8');
    for (const alert of alertNames()) {
      expect(operations, alert).toMatch(new RegExp(`^#### ${alert}$`, 'm'));
      expect(rules).toContain(`runbook: "docs/OPERATIONS.md#${alert.toLowerCase()}"`);
    }
  });

  it('reports readiness and the memory limits as metrics', async () => {
    const gateway = await startGateway();
    const exposition = await (await fetch(`${gateway.opsUrl}/metrics`)).text();
    expect(exposition).toMatch(/^tidings_ready 1$/m);
    const heapLimit = /^tidings_memory_limit_bytes\{limit="heap"\} (\d+)$/m.exec(exposition);
    expect(Number(heapLimit?.[1])).toBeGreaterThan(64 * 1024 * 1024);
  });
});
