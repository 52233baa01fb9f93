/**
 * Which scheme a registry is spoken to with. Like Docker: HTTPS always; registries on loopback or
 * listed in `insecureRegistries` use HTTPS if they speak TLS and plain HTTP only when the peer does
 * not speak TLS at all (certificate errors never downgrade). The choice is remembered per host.
 * An entry written `http://host:port` skips the HTTPS attempt for that registry.
 */
import { isIP } from 'node:net';

export type Scheme = 'http' | 'https';

/** `host:port`, `[v6]:port` or `host` → host name without port or brackets. */
export function hostOnly(host: string): string {
  if (host.startsWith('[')) return host.slice(1, host.indexOf(']'));
  const colon = host.lastIndexOf(':');
  return colon === -1 || host.indexOf(':') !== colon ? host : host.slice(0, colon);
}

export function isLoopbackHost(host: string): boolean {
  const name = hostOnly(host).toLowerCase();
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  if (isIP(name) === 4) return name.startsWith('127.');
  return name === '::1' || name === '0:0:0:0:0:0:0:1';
}

export class SchemePolicy {
  private readonly insecure = new Set<string>();
  private readonly forcedHttp = new Set<string>();
  private readonly learned = new Map<string, Scheme>();

  constructor(insecureRegistries: readonly string[] = []) {
    for (const entry of insecureRegistries) {
      const lower = entry.toLowerCase().replace(/\/+$/, '');
      if (lower.startsWith('http://')) this.forcedHttp.add(lower.slice('http://'.length));
      else this.insecure.add(lower.replace(/^https:\/\//, ''));
    }
  }

  /** Entries match `host:port` exactly, or any port when written without one. */
  private listed(set: Set<string>, host: string): boolean {
    const lower = host.toLowerCase();
    return set.has(lower) || set.has(hostOnly(lower));
  }

  schemeFor(host: string): Scheme {
    const learned = this.learned.get(host);
    if (learned !== undefined) return learned;
    return this.listed(this.forcedHttp, host) ? 'http' : 'https';
  }

  hasLearned(host: string): boolean {
    return this.learned.has(host);
  }

  mayUsePlainHttp(host: string): boolean {
    return isLoopbackHost(host) || this.listed(this.insecure, host) || this.listed(this.forcedHttp, host);
  }

  remember(host: string, scheme: Scheme): void {
    this.learned.set(host, scheme);
  }

  /** The choices remembered so far, per host (for a RegistrySession). */
  remembered(): { registry: string; scheme: Scheme }[] {
    return [...this.learned].map(([registry, scheme]) => ({ registry, scheme }));
  }

  /**
   * Remembers a choice another client made, but only one this client could have made itself:
   * its own settings decide which hosts may go without TLS, whatever the other client allowed.
   */
  adopt(host: string, scheme: Scheme): void {
    const allowed = scheme === 'http' ? this.mayUsePlainHttp(host) : scheme === 'https' && !this.listed(this.forcedHttp, host);
    if (allowed) this.remember(host, scheme);
  }
}
