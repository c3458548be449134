/**
 * Polls `probe` until it returns something truthy (a throw counts as "not yet") and returns that value;
 * fails naming `what` after `timeoutS` seconds. Shared by the end-to-end tests that wait on lab VMs.
 */
export async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutS: number, stepMs = 1000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    try { const v = await probe(); if (v) return v; } catch { /* not yet */ }
    if (Date.now() - t0 > timeoutS * 1000) throw new Error(`timed out after ${timeoutS}s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, stepMs));
  }
}
