import { describe, expect, it } from 'vitest';
import { startGateway, tokenFor } from './support/gateway.js';

/** The series lines of a Prometheus exposition (comments dropped). */
async function scrape(opsUrl: string): Promise<{ series: string[]; bytes: number }> {
  const text = await (await fetch(`${opsUrl}/metrics`)).text();
  // The process' own metrics (GC kinds, handles) come and go by themselves: only GraphQL's and ours.
  const lines = text.split('\n').filter((line) => line.startsWith('graphql_') || line.startsWith('tidings_'));
  return { series: lines.map((line) => line.slice(0, line.lastIndexOf(' '))), bytes: lines.join('\n').length };
}

describe('metric labels never carry a value the client chose', () => {
  it('keeps the number of series and the size of /metrics when thousands of unique names, URLs and aliases arrive', async () => {
    const gateway = await startGateway();
    const token = await tokenFor('alice');
    const unique = (index: number) => `${index.toString(36)}_${'x'.repeat(512)}`;
    // Every shape once, so each bounded series exists before the baseline is taken.
    const send = async (index: number) => {
      const name = `Op_${unique(index)}`;
      await Promise.all([
        // Unauthenticated POSTs (answered 401) with a unique operation name and query string.
        fetch(`${gateway.httpUrl}?x=${unique(index)}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ query: `query ${name} { __typename }`, operationName: name }),
        }),
        // A syntax error (parse phase) under a unique name.
        fetch(gateway.httpUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: `query ${name} {`, operationName: name }) }),
        // Authenticated GETs with unique variables in the URL, an unknown field and a unique alias.
        fetch(`${gateway.httpUrl}?query=${encodeURIComponent(`query ${name}($v: String) { __typename }`)}&variables=${encodeURIComponent(JSON.stringify({ v: unique(index) }))}`, {
          headers: { authorization: `Bearer ${token}` },
        }),
        gateway.http(`query ${name} { a${index.toString(36)}: viewer { id } missing_${index} }`, {}, token),
        gateway.http(`mutation ${name} { a${index.toString(36)}: publishPrice(input: {}) { id } }`, {}, token),
      ]);
    };
    for (let index = 0; index < 5; index++) await send(index);
    const before = await scrape(gateway.opsUrl);
    for (let batch = 0; batch < 40; batch++) await Promise.all(Array.from({ length: 25 }, (_, offset) => send(1_000 + batch * 25 + offset)));
    const after = await scrape(gateway.opsUrl);

    expect(after.series).toEqual(before.series);
    // Counters and sums grow by a few digits; a leaked label would add kilobytes per request.
    expect(after.bytes - before.bytes).toBeLessThan(2_000);
    const leaked = after.series.filter((line) => line.includes('Op_') || line.includes('xxxxxxxx') || /operationName=|url=|path=/.test(line));
    expect(leaked).toEqual([]);
    // 5,000 requests: minutes on a loaded CI machine are fine, nothing here is timed.
  }, 90_000);
});
