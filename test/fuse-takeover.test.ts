/**
 * FUSE connections changing hands inside clipcore and the holder's protocol, in one process: a
 * second session takes over a live, initialised connection (its INIT replayed) while the first
 * one stops reading; descriptors travel over the fd sockets; hostile messages to the holder get
 * an error answer and change nothing. Accesses to the mount go through child processes (a
 * blocking call here could wait on our own server).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { closeAll, createArchive, FdConnection, FdListener, mountArchive, type MountHandle } from '../src/clipcore/index.js';
import { startHolder, type Holder } from '../src/node/handover/holder.js';
import { PROTOCOL_VERSION, receiveConnections } from '../src/node/handover/protocol.js';
import { unmountAllUnder } from './helpers/mounts.js';
import { run } from './helpers/processes.js';

const quiet = (): void => undefined;

describe('FUSE connections changing hands', () => {
  let work: string;
  let archive: string;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'clip-takeover-'));
    const source = join(work, 'source');
    await mkdir(join(source, 'dir'), { recursive: true });
    for (let i = 0; i < 50; i++) await writeFile(join(source, 'dir', `f${i}`), `file ${i}\n`.repeat(1000));
    archive = join(work, 'tree.clip');
    await createArchive({ inputPath: source, outputPath: archive });
  });

  after(async () => {
    await unmountAllUnder(work);
    await rm(work, { recursive: true, force: true });
  });

  test('a second session takes over a live connection through an fd socket; the first stops reading; the kernel resends', async () => {
    const mountPoint = join(work, 'mnt');
    const first: MountHandle = await mountArchive({ archive, mountPoint });
    await first.start();
    let second: MountHandle | undefined;
    const listener = FdListener.listen(join(work, 'pass.sock'));
    try {
      assert.equal((await run('cat', [join(mountPoint, 'dir/f1')])).stdout, 'file 1\n'.repeat(1000));
      const connection = first.connection();
      assert.ok(connection, 'an initialised connection');
      assert.equal(connection.init.length > 40, true);

      // The descriptor crosses a socket, as between a plugin and its successor.
      const accepted = listener.accept();
      const sender = FdConnection.connect(listener.path);
      const receiver = await accepted;
      assert.ok(receiver);
      sender.send({ op: 'connection', init: Buffer.from(connection.init).toString('base64') }, [connection.fd]);
      const message = await receiver.receive();
      assert.ok(message);
      assert.equal(message.fds.length, 1);
      const fd = message.fds[0] as number;
      assert.notEqual(fd, connection.fd, 'the receiver got its own descriptor');

      second = await mountArchive({ archive, mountPoint, fuseFd: fd, fuseInit: Buffer.from(String(message.message.init), 'base64') });
      await second.start();
      closeAll([fd]);
      sender.close();
      receiver.close();
      first.detach();
      assert.equal(second.resendUnanswered(), true, 'Linux 6.9+ resends what a reader took and did not answer');
      const before = first.counters()?.open ?? 0;
      for (let i = 2; i < 12; i++) assert.equal((await run('cat', [join(mountPoint, `dir/f${i}`)])).stdout, `file ${i}\n`.repeat(1000));
      assert.equal(first.counters()?.open, before, 'the detached session reads nothing more');
      assert.ok((second.counters()?.open ?? 0) >= 10, 'the new session serves the opens');
      assert.ok((second.counters()?.lookup ?? 0) > 0, 'and the lookups');
    } finally {
      listener.close();
      await second?.unmount();
      await first.unmount();
    }
  });

  test('a malformed INIT request to adopt is refused before anything is served', async () => {
    const mountPoint = join(work, 'mnt-bad');
    const first = await mountArchive({ archive, mountPoint });
    await first.start();
    try {
      const connection = first.connection();
      assert.ok(connection);
      const notInit = Buffer.from(connection.init);
      notInit.writeUInt32LE(3, 4); // opcode GETATTR
      for (const init of [notInit, connection.init.subarray(0, 20), Buffer.alloc(300)]) {
        const handle = await mountArchive({ archive, mountPoint, fuseFd: connection.fd, fuseInit: init });
        await assert.rejects(handle.start(), { code: 'MOUNT_FAILED', message: /INIT request to adopt is malformed/ });
        await handle.unmount();
      }
      assert.equal((await run('cat', [join(mountPoint, 'dir/f0')])).stdout, 'file 0\n'.repeat(1000), 'the first session still serves');
    } finally {
      await first.unmount();
    }
  });

  describe('the holder', () => {
    let holder: Holder;
    let socket: string;
    before(async () => {
      socket = join(work, 'holder.sock');
      holder = await startHolder(socket, quiet);
    });
    after(async () => holder.close());

    async function exchange(message: Record<string, unknown>, fds: number[] = []): Promise<Record<string, unknown>> {
      const peer = FdConnection.connect(socket);
      try {
        peer.send(message, fds);
        const reply = await peer.receive();
        assert.ok(reply);
        closeAll(reply.fds);
        return reply.message;
      } finally {
        peer.close();
      }
    }

    test('keeps, lists and drops descriptors; hostile messages get an error and change nothing', async () => {
      const { openSync } = await import('node:fs');
      const fd = openSync('/dev/null', 'r');
      const connection = { key: 'sha256-abc-linux-amd64', mountPoint: '/state/images/sha256-abc-linux-amd64', init: Buffer.from('init').toString('base64') };
      try {
        assert.deepEqual(await exchange({ op: 'put', version: PROTOCOL_VERSION, connection }, [fd]), { op: 'ok' });
        for (const [hostile, why] of [
          [{ op: 'put', version: 99, connection }, /protocol version 99/],
          [{ op: 'put', version: PROTOCOL_VERSION, connection }, /without a descriptor/],
          [{ op: 'put', version: PROTOCOL_VERSION, connection: { ...connection, init: '!!' } }, /base64/],
          [{ op: 'put', version: PROTOCOL_VERSION, connection: { ...connection, key: 'x'.repeat(5000) } }, /key must be a string/],
          [{ op: 'explode', version: PROTOCOL_VERSION }, /unknown op explode/],
        ] as const) {
          const reply = await exchange(hostile, hostile.op === 'put' && hostile.version === PROTOCOL_VERSION && hostile.connection === connection ? [] : [fd]);
          assert.equal(reply.op, 'error', JSON.stringify(hostile).slice(0, 80));
          assert.match(String(reply.message), why);
        }
        assert.equal(holder.size, 1);
        const peer = FdConnection.connect(socket);
        peer.send({ op: 'list', version: PROTOCOL_VERSION });
        const listed = await receiveConnections(peer, 'the holder');
        peer.close();
        assert.deepEqual(listed.map((entry) => entry.info), [connection]);
        closeAll(listed.map((entry) => entry.fd));
        assert.deepEqual(await exchange({ op: 'drop', version: PROTOCOL_VERSION, key: connection.key }), { op: 'ok' });
        assert.equal(holder.size, 0);
      } finally {
        closeAll([fd]);
      }
    });
  });
});
