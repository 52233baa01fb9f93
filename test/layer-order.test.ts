/** The order in which indexing lanes take an image's layers (image/layer-pool.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nextLayer } from '../src/clipcore/image/layer-pool.js';

/** The layers in the order lanes take them, alternating the calling thread's lane (first) and a worker lane. */
function order(sizes: readonly number[] | undefined, count: number): number[] {
  const taken = new Array<boolean>(count).fill(false);
  const out: number[] = [];
  for (let n = 0; n < count; n++) {
    const layer = nextLayer(taken, sizes, n % 2 === 0);
    taken[layer] = true;
    out.push(layer);
  }
  return out;
}

test('free lanes take the largest layer left; equal sizes go from the back for the calling thread, from the front for workers', () => {
  // The bench's many-layer image, roughly: two big base layers, then small ones.
  const sizes = [25, 31, 6.7, 3.2, 4, 2.3, 2.7, 2.5, 1.1, 0.4, 2.6, 2.5, 1];
  assert.deepEqual(order(sizes, sizes.length), [1, 0, 2, 4, 3, 6, 10, 7, 11, 5, 8, 12, 9]);
  assert.deepEqual(order([5, 5, 5, 5, 5], 5), [4, 0, 3, 1, 2]);
  assert.deepEqual(order(undefined, 5), [4, 0, 3, 1, 2], 'without sizes: as before, workers from the front, the calling thread from the back');
  assert.equal(nextLayer([true, false, true], [9, 1, 9], false), 1, 'only untaken layers');
});
