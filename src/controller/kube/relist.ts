/**
 * What a relist saw: objects kept from before a relist that it did not list again were deleted
 * while the watch was down, and are dropped when it ends.
 */
export class RelistSeen {
  private seen: Set<string> | undefined;

  begin(): void {
    this.seen = new Set();
  }

  saw(uid: string): void {
    this.seen?.add(uid);
  }

  /** Ends the relist: the uids among `known` it did not see. */
  end(known: Iterable<string>): string[] {
    const seen = this.seen;
    this.seen = undefined;
    return [...known].filter((uid) => !seen?.has(uid));
  }
}
