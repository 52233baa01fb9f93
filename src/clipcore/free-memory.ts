import { loadAddon } from './native-addon.js';

interface NativeMemory {
  releaseFreeMemory(): boolean;
}

/** The addon (native/clip_memory.c), or null where it is not built; loaded on first use. */
let native: NativeMemory | null | undefined;

function loadNative(): NativeMemory | null {
  try {
    const loaded = loadAddon('clip_memory');
    const ok = typeof loaded === 'object' && loaded !== null && 'releaseFreeMemory' in loaded && typeof loaded.releaseFreeMemory === 'function';
    return ok ? (loaded as NativeMemory) : null;
  } catch {
    return null;
  }
}

/**
 * Hands the free pages of malloc's heaps back to the system (native/clip_memory.c): for after a
 * burst of work on worker threads, whose malloc arenas otherwise keep the peak resident. False
 * when nothing was returned, or where the addon is not built or the C library has no such call.
 */
export function releaseFreeMemory(): boolean {
  if (native === undefined) native = loadNative();
  return native?.releaseFreeMemory() ?? false;
}
