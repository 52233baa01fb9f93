import assert from 'node:assert/strict';
import { access, mkdtemp, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { CLIP_VERSION } from '../src/clipcore/index.js';
import { fuseMountsUnder, unmountAllUnder } from './helpers/mounts.js';
import { CLIP_BIN, run, runClip, startClipMount } from './helpers/processes.js';

describe('clip command line', () => {
  let work: string;
  /** Built once, read only by the tests. */
  let archive: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'clip-cli-'));
    await mkdir(join(work, 'src/sub'), { recursive: true });
    await writeFile(join(work, 'src/a.txt'), 'A\n');
    await writeFile(join(work, 'src/sub/b.txt'), 'B\n');
    archive = join(work, 'out.clip');
    const created = await runClip(['create', join(work, 'src'), '-o', archive]);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /created .*out\.clip: 4 entries/);
  });

  after(async () => {
    await unmountAllUnder(work);
    await rm(work, { recursive: true, force: true });
  });

  // Each test works in a directory of its own, unmounted and removed after it: a test that fails
  // with a mount up or a file left over cannot make the next one fail.
  let own: string;
  beforeEach(async () => {
    own = await mkdtemp(join(work, 'test-'));
  });
  afterEach(async () => {
    await unmountAllUnder(own);
    await rm(own, { recursive: true, force: true });
  });

  test('--version and --help', async () => {
    const version = await runClip(['--version']);
    assert.equal(version.code, 0);
    assert.equal(version.stdout.trim(), CLIP_VERSION);
    const help = await runClip(['--help']);
    assert.equal(help.code, 0);
    for (const command of ['create', 'inspect', 'mount']) assert.match(help.stdout, new RegExp(`\\b${command}\\b`));
    const createHelp = await runClip(['create', '--help']);
    assert.match(createHelp.stdout, /--output/);
    assert.match(createHelp.stdout, /--no-xattrs/);
  });

  test('runs through symbolic links, as npm links the command', async () => {
    // node_modules/.bin/clip -> ../clip-csi/bin/clip, here with a second, relative link in front.
    const bin = join(own, 'links', '.bin');
    await mkdir(bin, { recursive: true });
    await symlink(CLIP_BIN, join(bin, 'clip'));
    await symlink('.bin/clip', join(own, 'links', 'clip'));
    for (const command of [join(bin, 'clip'), join(own, 'links', 'clip')]) {
      const result = await run(command, ['--version']);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.trim(), CLIP_VERSION);
    }
  });

  test('usage errors exit 2', async () => {
    for (const args of [['bogus'], ['create'], ['create', own], ['inspect'], ['mount', archive], ['inspect', archive, '--nope']]) {
      const result = await runClip(args);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
    }
  });

  test('errors print one line without a stack trace unless --debug', async () => {
    const corrupt = join(own, 'corrupt.clip');
    await writeFile(corrupt, 'this is not an archive');
    const result = await runClip(['inspect', corrupt]);
    assert.equal(result.code, 1);
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    assert.match(result.stderr, /not a \.clip archive/);
    const debug = await runClip(['--debug', 'inspect', corrupt]);
    assert.equal(debug.code, 1);
    assert.match(debug.stderr, /\n\s+at /);
    const missing = await runClip(['inspect', join(own, 'missing.clip')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /missing\.clip/);
  });

  test('create failures leave nothing behind', async () => {
    const result = await runClip(['create', join(own, 'no-such-dir'), '-o', join(own, 'never.clip')]);
    assert.equal(result.code, 1);
    await assert.rejects(access(join(own, 'never.clip')));
    const noDir = await runClip(['create', join(own, 'SRCKEEP'), '-o', join(own, 'no-such-dir/out.clip')]);
    assert.equal(noDir.code, 1);
    assert.deepEqual((await readdir(own)).filter((name) => name.includes('.tmp-') || name.includes('.data-')), []);
  });

  test('inspect prints a summary, JSON and a listing', async () => {
    const text = await runClip(['inspect', archive]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /storage mode\s+local/);
    const json = await runClip(['inspect', archive, '--json', '--list']);
    const parsed = JSON.parse(json.stdout) as { storage: { mode: string }; entries: number; paths: { path: string; type: string }[] };
    assert.equal(parsed.storage.mode, 'local');
    assert.equal(parsed.entries, 4);
    assert.deepEqual(parsed.paths.map((p) => p.path).sort(), ['/', '/a.txt', '/sub', '/sub/b.txt']);
    const list = await runClip(['inspect', archive, '--list']);
    assert.match(list.stdout, /file\s+0644 .*\/sub\/b\.txt/);
  });

  test('mount serves files, unmounts on SIGTERM and SIGINT', async () => {
    const mountPoint = join(own, 'mnt');
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const mount = await startClipMount(archive, mountPoint);
      assert.equal(await readFile(join(mountPoint, 'sub/b.txt'), 'utf8'), 'B\n');
      mount.child.kill(signal);
      const result = await mount.stop();
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(await fuseMountsUnder(own), []);
    }
  });

  test('mount ends when its mount is unmounted from outside', async () => {
    const mountPoint = join(own, 'outside');
    const mount = await startClipMount(archive, mountPoint);
    try {
      assert.equal(await readFile(join(mountPoint, 'a.txt'), 'utf8'), 'A\n');
      assert.equal((await run('fusermount', ['-u', mountPoint])).code, 0);
      // Not a timing check: without the watch the command would never end.
      const result = await Promise.race([mount.exited, delay(30_000).then(() => undefined)]);
      assert.ok(result, 'clip mount still runs after its mount was removed');
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stderr, /"unmountedElsewhere":true/);
    } finally {
      await mount.stop();
    }
    assert.deepEqual(await fuseMountsUnder(own), []);
  });

  test('mount cleans a stale mount left by a killed server', async () => {
    const mountPoint = join(own, 'stale');
    const first = await startClipMount(archive, mountPoint);
    first.child.kill('SIGKILL');
    await first.stop();
    assert.deepEqual(await fuseMountsUnder(mountPoint), [mountPoint], 'the killed server left its mount');
    const second = await startClipMount(archive, mountPoint);
    try {
      assert.equal(await readFile(join(mountPoint, 'a.txt'), 'utf8'), 'A\n');
    } finally {
      await second.stop();
    }
    assert.deepEqual(await fuseMountsUnder(own), []);
  });

  test('mount of a damaged archive fails without mounting', async () => {
    const damaged = join(own, 'damaged.clip');
    const bytes = await readFile(archive);
    bytes[30] = (bytes[30] as number) ^ 1;
    await writeFile(damaged, bytes);
    const result = await runClip(['mount', damaged, join(own, 'mnt-damaged')]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /checksum/);
    assert.deepEqual(await fuseMountsUnder(own), []);
  });
});
