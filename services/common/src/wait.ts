/** Resolves when `check` holds, polling every `intervalMs`; false when `timeoutMs` passes first. */
export async function waitUntil(check: () => boolean, timeoutMs: number, intervalMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  return true;
}

/**
 * Rejects with a message naming what was awaited if `promise` does not settle in time. `onLate`
 * gets the abandoned promise, to clean up what it may still bring (a connection that opens late).
 */
export async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string, onLate?: (late: Promise<T>) => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      onLate?.(promise);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
