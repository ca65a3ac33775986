// Waiting for something a test caused to show, in real time, for the few loopback tests that
// must (a DNS refresh, an ejection running out). Polls the condition; fails with `what` when it
// has not come true within the bound.

export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const started = performance.now();
  for (;;) {
    if (await condition()) return;
    if (performance.now() - started > timeoutMs) throw new Error(`gave up after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
