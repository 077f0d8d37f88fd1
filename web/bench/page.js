// What the benchmark pages (bench.js, scale.js) share: fetching their
// inputs, latency percentiles, and handing the result to the driver.

export async function json(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`cannot load ${url}: HTTP ${response.status}`);
  return response.json();
}

export function percentiles(times) {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (p) => sorted[Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length))) - 1];
  return { p50: at(0.5), p95: at(0.95) };
}

export function runtime() {
  return `browser (${navigator.userAgent.match(/Chrom(e|ium)\/[\d.]+/)?.[0] ?? navigator.userAgent})`;
}

/** The result lands in `window.benchResult` (or `window.benchError`), where the driver polls. */
export function report(run) {
  run().then(
    (result) => {
      window.benchResult = result;
      document.getElementById('status').textContent = 'done';
    },
    (e) => {
      window.benchError = e instanceof Error ? e.message : String(e);
      document.getElementById('status').textContent = `failed: ${window.benchError}`;
    },
  );
}
