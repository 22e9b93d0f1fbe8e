import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
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

interface RuleFile {
  groups: Array<{ rules: Array<{ alert: string; expr: string }> }>;
}
const rules = () => (parseYaml(readFileSync(RULES, 'utf8')) as RuleFile).groups.flatMap((group) => group.rules);
const alertNames = () => rules().map((rule) => rule.alert);
const ruleExpressions = () => rules().map((rule) => rule.expr);

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

  it('reports readiness and the memory limits as metrics, and not ready once shutting down', async () => {
    const gateway = await startGateway();
    const exposition = await (await fetch(`${gateway.opsUrl}/metrics`)).text();
    expect(exposition).toMatch(/^tidings_ready 1$/m);
    const heapLimit = /^tidings_memory_limit_bytes\{limit="heap"\} (\d+)$/m.exec(exposition);
    expect(Number(heapLimit?.[1])).toBeGreaterThan(64 * 1024 * 1024);
    const stopped = gateway.app.stop();
    expect(await gateway.app.metrics.registry.metrics()).toMatch(/^tidings_ready 0$/m);
    await stopped;
  });

  it("compose.yaml's observability profile scrapes both gateways with the rules and provisions the dashboard", () => {
    interface Service {
      readonly build?: unknown;
      readonly profiles?: string[];
      readonly volumes?: string[];
      readonly environment?: Record<string, string>;
    }
    const compose = parseYaml(readFileSync(join(ROOT, 'compose.yaml'), 'utf8'), { merge: true }) as { services: Record<string, Service> };
    const gateways = Object.entries(compose.services).filter(([, service]) => service.build !== undefined);
    const prometheus = compose.services['prometheus'];
    const grafana = compose.services['grafana'];
    expect(prometheus?.profiles).toEqual(['observability']);
    expect(grafana?.profiles).toEqual(['observability']);
    // Every mounted file or directory is in the repository.
    const mounts = (service: Service) => (service.volumes ?? []).map((volume) => volume.split(':') as [string, string, string?]);
    for (const [source] of [...mounts(prometheus!), ...mounts(grafana!)]) expect(existsSync(join(ROOT, source)), source).toBe(true);
    expect(mounts(prometheus!)).toContainEqual(['./deploy/prometheus', '/etc/prometheus', 'ro']);

    // Prometheus' own check of its configuration and the rule files it names.
    execFileSync('promtool', ['check', 'config', 'prometheus.yml'], { cwd: join(ROOT, 'deploy/prometheus'), encoding: 'utf8' });
    const config = parseYaml(readFileSync(join(ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8')) as {
      rule_files: string[];
      scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>;
    };
    expect(config.rule_files).toEqual(['tidings-alerts.yml']);
    // The job the alert rules name, on each gateway's operator port.
    const job = config.scrape_configs.find((each) => each.job_name === 'tidings');
    const expected = gateways.map(([name, service]) => `${name}:${service.environment?.['METRICS_PORT'] ?? '9464'}`);
    expect(job?.static_configs.flatMap((each) => each.targets).sort()).toEqual(expected.sort());
    expect(readFileSync(RULES, 'utf8')).toContain('up{job="tidings"}');

    // Grafana: the data source is that Prometheus, the dashboard is loaded from where it is mounted.
    const provisioning = mounts(grafana!).find(([source]) => source === './deploy/grafana/provisioning');
    expect(provisioning?.[1]).toBe('/etc/grafana/provisioning');
    const datasources = parseYaml(readFileSync(join(ROOT, 'deploy/grafana/provisioning/datasources/prometheus.yml'), 'utf8')) as { datasources: Array<{ type: string; url: string }> };
    expect(datasources.datasources).toEqual([expect.objectContaining({ type: 'prometheus', url: 'http://prometheus:9090' })]);
    const providers = parseYaml(readFileSync(join(ROOT, 'deploy/grafana/provisioning/dashboards/tidings.yml'), 'utf8')) as { providers: Array<{ options: { path: string } }> };
    const dashboardMount = mounts(grafana!).find(([source]) => source === './deploy/grafana/tidings-dashboard.json');
    expect(dashboardMount && posix.dirname(dashboardMount[1])).toBe(providers.providers[0]?.options.path);
  });
});
