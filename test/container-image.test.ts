/**
 * The container image, run the way a cluster runs it: built by scripts/build-image.sh, pushed to a
 * loopback registry and written as an OCI archive, imported into a private containerd, then run
 * with runc: `clip --version`, the controller's way (non-root, read-only root filesystem), and
 * `clip node` as the DaemonSet runs it (privileged, kubelet's directory shared with Bidirectional
 * propagation), serving CSI over its socket and publishing an image volume whose FUSE mount,
 * made inside the container, is read from the host. A library or program missing from the image
 * fails here, not on a user's node.
 */
import assert from 'node:assert/strict';
import { access, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { readMountTable } from '../src/node/mount-utils.js';
import { buildClipImage, packageVersion, REPO_ROOT } from './harness/clip-image.js';
import { makeSharedMount, startContainerd, type ContainerdHandle, type ContainerTask } from './harness/containerd.js';
import { pushImage } from './harness/image-builder.js';
import { startRegistry, type RegistryHandle } from './harness/registry.js';
import { buildTarLayer } from './harness/tar-layer.js';
import { connectCsi, ephemeralContext, MOUNT_CAPABILITY, type CsiClient } from './helpers/csi-client.js';
import { makePluginDir, podVolume } from './helpers/csi-plugin.js';

const IMAGE_NAME = 'clip-csi';
const NONROOT = { uid: 65532, gid: 65532 };
const HELLO = 'hello from an image volume\n';

/**
 * Run inside the image by its own Node.js: every npm dependency loads (fuse-native loads libfuse
 * through its prebuilt binary), so does each native addon of ours, and every program clip starts
 * is on the PATH. Prints one line per check, and exits 1 at the first failure.
 */
const IMAGE_CHECK = `
const { createRequire } = require('node:module');
const { readdirSync } = require('node:fs');
const { execFileSync } = require('node:child_process');
const root = '/opt/clip-csi/';
const load = createRequire(root + 'package.json');
for (const name of Object.keys(load('./package.json').dependencies)) { load(name); console.log('module ' + name); }
const addons = root + 'native/build/Release/';
for (const file of readdirSync(addons).filter((f) => f.endsWith('.node'))) { process.dlopen({ exports: {} }, addons + file); console.log('addon ' + file); }
for (const program of ['fusermount', 'mount', 'umount', 'getfattr']) { execFileSync('sh', ['-c', 'command -v ' + program]); console.log('program ' + program); }
`;

describe('deploy/Dockerfile and scripts/build-image.sh make the same image', () => {
  it('the same Debian packages at run time', async () => {
    const script = await readFile(join(REPO_ROOT, 'scripts/build-image.sh'), 'utf8');
    const dockerfile = await readFile(join(REPO_ROOT, 'deploy/Dockerfile'), 'utf8');
    const fromScript = /^RUNTIME_PACKAGES=\(([^)]*)\)$/m.exec(script)?.[1]?.split(/\s+/);
    const runtimeStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
    const fromDockerfile = /apt-get install -y --no-install-recommends ([^&]*)&&/.exec(runtimeStage)?.[1]?.trim().split(/\s+/);
    assert.ok(fromScript && fromDockerfile, 'both name their packages');
    assert.deepEqual([...fromDockerfile].sort(), [...fromScript].sort());
  });

  it('the same entrypoint, user and application directory', async () => {
    const script = await readFile(join(REPO_ROOT, 'scripts/build-image.sh'), 'utf8');
    const dockerfile = await readFile(join(REPO_ROOT, 'deploy/Dockerfile'), 'utf8');
    assert.match(dockerfile, /^ENTRYPOINT \["clip"\]$/m);
    assert.match(script, /--config\.entrypoint clip /);
    assert.match(script, /^APP_DIR=\/opt\/clip-csi$/m);
    assert.match(dockerfile, /^RUN ln -s \/opt\/clip-csi\/bin\/clip \/usr\/local\/bin\/clip$/m);
    assert.match(script, new RegExp(`^NONROOT_ID=${NONROOT.uid}$`, 'm'));
    assert.match(dockerfile, new RegExp(`useradd --uid ${NONROOT.uid} --gid ${NONROOT.gid} `));
  });
});

describe('container image: built without a daemon, run by containerd and runc', () => {
  let registry: RegistryHandle;
  let containerd: ContainerdHandle;
  let workDir: string;
  let ref: string;
  let importedDigest: string;
  let version: string;

  before(async () => {
    version = await packageVersion();
    workDir = await makePluginDir('clip-image-');
    registry = await startRegistry();
    ref = `${registry.host}/${IMAGE_NAME}:test`;
    const archive = join(workDir, 'clip-csi.oci.tar');
    const [built, started] = await Promise.allSettled([buildClipImage(ref, { ociArchive: archive }), startContainerd()]);
    if (started.status === 'fulfilled') containerd = started.value;
    if (built.status === 'rejected') throw built.reason;
    if (started.status === 'rejected') throw started.reason;
    for (const line of built.value.progress) console.log(line);
    console.log(`image built and pushed in ${built.value.seconds.toFixed(1)} s`);
    const importStarted = Date.now();
    importedDigest = await containerd.importImage(archive, ref);
    await rm(archive);
    console.log(`image imported into containerd in ${((Date.now() - importStarted) / 1000).toFixed(1)} s`);
  });

  after(async () => {
    await containerd?.stop();
    await registry?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it('the registry holds the image containerd imported, with its entrypoint and OCI labels', async () => {
    const accept = 'application/vnd.oci.image.manifest.v1+json';
    const manifestResponse = await fetch(`${registry.url}/v2/${IMAGE_NAME}/manifests/test`, { headers: { accept } });
    assert.equal(manifestResponse.status, 200);
    assert.equal(manifestResponse.headers.get('docker-content-digest'), importedDigest, 'pushed and archived manifests are the same');
    const manifest = (await manifestResponse.json()) as { config: { digest: string }; layers: unknown[] };
    assert.equal(manifest.layers.length, 3, 'root filesystem, Node.js, clip-csi');
    const config = (await (await fetch(`${registry.url}/v2/${IMAGE_NAME}/blobs/${manifest.config.digest}`)).json()) as {
      architecture: string;
      config: { Entrypoint: string[]; Cmd?: string[]; User?: string; Labels: Record<string, string> };
    };
    assert.deepEqual(config.config.Entrypoint, ['clip']);
    assert.equal(config.config.Cmd, undefined);
    assert.ok(!config.config.User, 'root by default: the node plugin mounts; the controller sets its user');
    assert.equal(config.config.Labels['org.opencontainers.image.version'], version);
    assert.equal(config.config.Labels['org.opencontainers.image.licenses'], 'Apache-2.0');
    assert.equal(config.config.Labels['org.opencontainers.image.title'], 'clip-csi');
  });

  it('clip --version prints the package version', async () => {
    const result = await containerd.run({ image: ref, args: ['clip', '--version'] });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), version);
  });

  it('every npm dependency, native addon and program clip runs is in the image', async () => {
    const result = await containerd.run({ image: ref, args: ['node', '-e', IMAGE_CHECK] });
    assert.equal(result.code, 0, `${result.stdout}${result.stderr}`);
    const gyp = JSON.parse(await readFile(join(REPO_ROOT, 'native/binding.gyp'), 'utf8')) as { targets: Array<{ target_name: string }> };
    const addons = gyp.targets.map((target) => `addon ${target.target_name}.node`);
    for (const expected of ['module fuse-native', 'module @grpc/grpc-js', ...addons, 'program fusermount', 'program mount']) {
      assert.ok(result.stdout.split('\n').includes(expected), `${expected} missing from:\n${result.stdout}`);
    }
  });

  it('as the non-root user (uid 65532) with a read-only root filesystem, as the controller runs', async () => {
    const result = await containerd.run({
      image: ref,
      user: NONROOT,
      readOnlyRootfs: true,
      args: ['sh', '-c', 'id -un; id -u; if touch /tmp/probe 2>/dev/null; then echo writable; fi; exec clip --help'],
    });
    assert.equal(result.code, 0, result.stderr);
    const [name, uid, next] = result.stdout.split('\n');
    assert.equal(name, 'clip', 'the user exists in the image');
    assert.equal(uid, String(NONROOT.uid));
    assert.match(next ?? '', /^Usage: clip /, 'the root filesystem is read-only');
    assert.match(result.stdout, /^\s+node \[options\]/m);
  });

  it('clip controller --help, as the controller runs', async (t) => {
    const help = await containerd.run({ image: ref, args: ['clip', '--help'] });
    if (!/^\s+controller\b/m.test(help.stdout)) {
      t.skip('this build has no `clip controller` command yet');
      return;
    }
    const result = await containerd.run({ image: ref, user: NONROOT, readOnlyRootfs: true, args: ['clip', 'controller', '--help'] });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Usage: clip controller/);
  });

  it('clip node in a privileged container with a read-only root: Identity over its socket, an image volume mounted inside shows on the host', async () => {
    await pushImage(registry, 'apps/hello', 'v1', [buildTarLayer([{ type: 'file', path: 'hello.txt', content: HELLO, mode: 0o644 }])]);
    const kubeletDir = join(workDir, 'kubelet');
    const nodeTmp = join(workDir, 'node-tmp');
    await Promise.all([mkdir(kubeletDir), mkdir(nodeTmp)]);
    const unshare = await makeSharedMount(kubeletDir);
    let node: ContainerTask | undefined;
    let csi: CsiClient | undefined;
    try {
      const socket = join(kubeletDir, 'plugins', 'csi.sock');
      await mkdir(join(kubeletDir, 'plugins'));
      node = await containerd.start({
        image: ref,
        privileged: true,
        netHost: true,
        // As the chart runs it: a read-only root filesystem, /tmp an emptyDir of its own.
        readOnlyRootfs: true,
        rootfsPropagation: 'rshared',
        // /tmp first: this test's kubelet directory lies under /tmp, so it must go on top.
        mounts: [
          { source: nodeTmp, destination: '/tmp' },
          { source: kubeletDir, options: ['rbind', 'rshared'] },
        ],
        env: { NODE_NAME: 'image-test-node' },
        args: [
          'clip',
          'node',
          '--endpoint',
          `unix://${socket}`,
          '--kubelet-dir',
          kubeletDir,
          '--state-dir',
          join(kubeletDir, 'plugins', 'state'),
          '--cache-dir',
          join(kubeletDir, 'plugins', 'cache'),
        ],
      });
      await waitForPath(socket, node);
      csi = await connectCsi(socket);
      const info = await csi.GetPluginInfo();
      assert.equal(info.name, 'clip.csi.dev');
      assert.equal(info.vendor_version, version);
      assert.equal((await csi.Probe()).ready?.value, true, 'ready: /dev/fuse and fusermount are usable in the container');
      assert.equal((await csi.NodeGetInfo()).node_id, 'image-test-node');

      const volume = await podVolume(kubeletDir);
      await csi.NodePublishVolume({
        volume_id: volume.volumeId,
        target_path: volume.targetPath,
        volume_capability: MOUNT_CAPABILITY('SINGLE_NODE_READER_ONLY'),
        readonly: true,
        volume_context: ephemeralContext(`${registry.host}/apps/hello:v1`, { name: volume.podName, uid: volume.podUid }),
      });
      const seen = (await readMountTable()).filter((entry) => entry.mountPoint === volume.targetPath);
      assert.ok(
        seen.some((entry) => entry.fsType.startsWith('fuse')),
        `the FUSE mount made in the container propagates to the host: ${JSON.stringify(seen)}`,
      );
      assert.equal(await readFile(join(volume.targetPath, 'hello.txt'), 'utf8'), HELLO);
      await csi.NodeUnpublishVolume({ volume_id: volume.volumeId, target_path: volume.targetPath });
      assert.deepEqual(
        (await readMountTable()).filter((entry) => entry.mountPoint === volume.targetPath),
        [],
        'unpublish inside the container unmounts on the host too',
      );
      const stopped = await node.stop('SIGTERM');
      assert.equal(stopped.code, 0, `clip node exits 0 on SIGTERM:\n${node.output()}`);
    } finally {
      csi?.close();
      await node?.stop('SIGKILL').catch(() => undefined);
      // The image's FUSE mount (kept for the next node plugin) and the shared bind itself.
      await unshare();
    }
  });
});

/** Waits for the node plugin's socket, failing as soon as the container ends. */
async function waitForPath(path: string, task: ContainerTask, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let ended = false;
  void task.exited.then(() => {
    ended = true;
  });
  for (;;) {
    const there = await access(path).then(
      () => true,
      () => false,
    );
    if (there) return;
    if (ended) throw new Error(`the container ended before ${path} appeared:\n${task.output()}`);
    if (Date.now() > deadline) throw new Error(`${path} did not appear within ${timeoutMs} ms:\n${task.output()}`);
    await delay(100);
  }
}
