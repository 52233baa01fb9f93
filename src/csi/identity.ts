/** The CSI Identity service: who the plugin is, what it serves, whether it is ready. */
import { ClipError } from '../clipcore/errors.js';
import type { IdentityService } from './server.js';

export const DEFAULT_DRIVER_NAME = 'clip.csi.dev';

export interface Readiness {
  ready: boolean;
  /** Why it is not ready, one entry per failed check. */
  problems: string[];
}

export interface IdentityOptions {
  driverName: string;
  version: string;
  readiness: () => Promise<Readiness>;
  /** The controller (`clip controller`) serves the Controller service; the node plugin does not. */
  controllerService?: boolean;
}

/** CSI: at most 63 characters, alphanumerics at both ends, dashes, dots and alphanumerics between. */
export function checkDriverName(name: string): string {
  if (name.length > 63 || !/^[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(name)) {
    throw new ClipError(
      'INVALID_ARGUMENT',
      `driver name ${JSON.stringify(name)} must be at most 63 characters of domain-name form (alphanumerics, '-' and '.', alphanumerics at both ends)`,
    );
  }
  return name;
}

export function identityService(options: IdentityOptions): IdentityService {
  return {
    async GetPluginInfo() {
      return { name: options.driverName, vendor_version: options.version, manifest: {} };
    },
    async GetPluginCapabilities() {
      // CONTROLLER_SERVICE only where the Controller service is served (the external-provisioner
      // checks it); no topology constraints (every node can reach the registry), no volume expansion.
      return { capabilities: options.controllerService ? [{ service: { type: 'CONTROLLER_SERVICE' } }] : [] };
    },
    async Probe(_request, ctx) {
      const readiness = await options.readiness();
      if (!readiness.ready) ctx.annotate({ not_ready: readiness.problems });
      return { ready: { value: readiness.ready } };
    },
  };
}
