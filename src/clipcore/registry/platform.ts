/**
 * Platforms (os/architecture/variant) and how an index entry is chosen for one. Matching follows
 * containerd: arm64 `v8` equals no variant, and an arm host may run older arm variants.
 */
import { endianness } from 'node:os';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

const NODE_ARCH: Readonly<Record<string, { architecture: string; variant?: string }>> = {
  x64: { architecture: 'amd64' },
  arm64: { architecture: 'arm64', variant: 'v8' },
  arm: { architecture: 'arm', variant: 'v7' },
  ia32: { architecture: '386' },
  s390x: { architecture: 's390x' },
  riscv64: { architecture: 'riscv64' },
  loong64: { architecture: 'loong64' },
  mips: { architecture: 'mips' },
  mipsel: { architecture: 'mipsle' },
  mips64el: { architecture: 'mips64le' },
};

/** The platform of this process in OCI terms (Node's `x64` is `amd64`, and so on). */
export function hostPlatform(): Platform {
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  if (process.arch === 'ppc64') return { os, architecture: endianness() === 'LE' ? 'ppc64le' : 'ppc64' };
  const mapped = NODE_ARCH[process.arch] ?? { architecture: process.arch };
  if (process.arch === 'arm') {
    // Node records the ARM version it was built for; armv6 builds still exist.
    const armVersion = (process.config.variables as Record<string, unknown>)['arm_version'];
    if (armVersion === '6' || armVersion === '7') return { os, architecture: 'arm', variant: `v${armVersion}` };
  }
  return { os, ...mapped };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

function normalise(p: Platform): { os: string; architecture: string; variant: string } {
  let variant = p.variant ?? '';
  if (p.architecture === 'arm64' && variant === 'v8') variant = '';
  if (p.architecture === 'arm' && variant === '') variant = 'v7';
  return { os: p.os.toLowerCase(), architecture: p.architecture.toLowerCase(), variant };
}

/**
 * How well `candidate` serves `wanted`: undefined when it cannot run there, lower is better
 * (0 = exact). An unspecified wanted variant accepts any variant, preferring the default one.
 */
export function platformScore(wanted: Platform, candidate: Platform): number | undefined {
  const w = normalise(wanted);
  const c = normalise(candidate);
  if (w.os !== c.os || w.architecture !== c.architecture) return undefined;
  if (wanted.variant === undefined) return c.variant === '' || c.variant === w.variant ? 0 : 1;
  if (w.variant === c.variant) return 0;
  if (w.architecture === 'arm') {
    const wv = Number(w.variant.slice(1));
    const cv = Number(c.variant.slice(1));
    if (wv > cv && cv >= 5) return wv - cv;
  }
  return undefined;
}

/** Picks the best entry for `wanted` (first one on ties, as registries list preferred entries first). */
export function selectPlatform<T extends { platform?: Platform }>(wanted: Platform, entries: readonly T[]): T | undefined {
  let best: T | undefined;
  let bestScore = Infinity;
  for (const entry of entries) {
    if (entry.platform === undefined) continue;
    const score = platformScore(wanted, entry.platform);
    if (score !== undefined && score < bestScore) {
      best = entry;
      bestScore = score;
    }
  }
  return best;
}
