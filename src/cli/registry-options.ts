import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { ClipError } from '../clipcore/errors.js';
import type { RegistryClientOptions } from '../clipcore/index.js';
import { collect } from './flag-parsers.js';

/** The registry flags shared by `clip index` and `clip mount`. */
export interface RegistryFlags {
  insecureRegistry: string[];
  caCert: string[];
  username?: string;
  passwordStdin?: boolean;
  dockerConfig?: string;
}

export const insecureRegistryOption = (): Option =>
  new Option('--insecure-registry <host:port>', 'allow plain HTTP to this registry (repeatable; loopback registries always may)').argParser(collect).default([]);
export const caCertOption = (): Option => new Option('--ca-cert <file.pem>', 'trust this CA certificate for registry TLS (repeatable)').argParser(collect).default([]);

/** The registry flags of the services (`clip node`, `clip controller`), whose credentials come from pull secrets. */
export interface ServiceRegistryFlags {
  insecureRegistry: string[];
  caCert: string[];
  dockerConfig?: string;
}

export async function serviceRegistrySettings(
  flags: ServiceRegistryFlags,
): Promise<{ insecureRegistries: string[]; caCertificates: Buffer[]; dockerConfigPath?: string }> {
  return {
    insecureRegistries: flags.insecureRegistry,
    caCertificates: await Promise.all(flags.caCert.map((file) => readFile(file))),
    ...(flags.dockerConfig !== undefined && { dockerConfigPath: flags.dockerConfig }),
  };
}

export function addRegistryFlags(command: Command): Command {
  return command
    .addOption(insecureRegistryOption())
    .addOption(caCertOption())
    .option('--username <user>', 'registry user name (the password comes from --password-stdin)')
    .option('--password-stdin', 'read the registry password (or token) from standard input')
    .option('--docker-config <path>', 'Docker config.json (or its directory) for credentials; default $DOCKER_CONFIG or ~/.docker');
}

export async function registryOptionsFrom(flags: RegistryFlags): Promise<RegistryClientOptions> {
  if (flags.passwordStdin && !flags.username) {
    throw new ClipError('INVALID_ARGUMENT', '--password-stdin needs --username');
  }
  if (flags.username && !flags.passwordStdin) {
    throw new ClipError('INVALID_ARGUMENT', '--username needs --password-stdin (passwords are never taken on the command line)');
  }
  const password = flags.passwordStdin ? (await readStdin()).replace(/\r?\n$/, '') : undefined;
  const caCertificates = await Promise.all(flags.caCert.map((file) => readFile(file)));
  return {
    auth: flags.username && password !== undefined ? { username: flags.username, password } : undefined,
    insecureRegistries: flags.insecureRegistry,
    caCertificates,
    dockerConfigPath: flags.dockerConfig,
  };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}
