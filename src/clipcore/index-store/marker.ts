/**
 * The "being indexed" marker: a small JSON object at `<index key>.indexing`, written by whoever is
 * indexing an image for the cluster (the controller) and refreshed every few seconds. A node that
 * finds no index but a fresh marker waits for the index instead of indexing the image itself; a
 * marker that stopped being refreshed belongs to a dead indexer and is ignored.
 */

export const MARKER_VERSION = 1;
/** A marker not refreshed for this long is stale, whatever its expiry says. */
export const MARKER_STALE_MS = 60_000;
/** How often a live indexer refreshes its marker. */
export const MARKER_REFRESH_MS = 5_000;

export interface IndexingMarker {
  version: typeof MARKER_VERSION;
  /** Who indexes: e.g. `controller/<pod name>`. Never a credential. */
  holder: string;
  /** ISO 8601 times. */
  startedAt: string;
  refreshedAt: string;
  /** Past this the marker is stale even if refreshed recently (the holder's own promise). */
  expiresAt: string;
  /** Human-readable progress, e.g. "indexing: 45% of 80 MB compressed, 6/13 layers". */
  progress?: string;
}

export function newMarker(holder: string, now: Date, progress?: string): IndexingMarker {
  return {
    version: MARKER_VERSION,
    holder,
    startedAt: now.toISOString(),
    refreshedAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + MARKER_STALE_MS).toISOString(),
    ...(progress !== undefined && { progress }),
  };
}

export function refreshedMarker(marker: IndexingMarker, now: Date, progress?: string): IndexingMarker {
  return {
    ...marker,
    refreshedAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + MARKER_STALE_MS).toISOString(),
    ...(progress !== undefined && { progress }),
  };
}

/**
 * Fresh: refreshed within `staleMs` (default MARKER_STALE_MS) and not past its expiry. A clock
 * skew of a few seconds is tolerated by the margin.
 */
export function isMarkerFresh(marker: IndexingMarker, now: Date, staleMs = MARKER_STALE_MS): boolean {
  const refreshed = Date.parse(marker.refreshedAt);
  const expires = Date.parse(marker.expiresAt);
  if (!Number.isFinite(refreshed) || !Number.isFinite(expires)) return false;
  return now.getTime() - refreshed < staleMs && now.getTime() < expires;
}

/** Parses a marker object's body; anything that is not a marker of this version is undefined (treated as absent). */
export function parseMarker(body: string): IndexingMarker | undefined {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const record = value as Record<string, unknown>;
  if (record.version !== MARKER_VERSION) return undefined;
  for (const field of ['holder', 'startedAt', 'refreshedAt', 'expiresAt'] as const) {
    if (typeof record[field] !== 'string') return undefined;
  }
  if (record.progress !== undefined && typeof record.progress !== 'string') return undefined;
  return record as unknown as IndexingMarker;
}
