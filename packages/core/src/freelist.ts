/**
 * A bounded free list of reusable buffers that empties itself once unused:
 * memory handed back for the next allocation of the same kind, so a large
 * write reuses memory instead of faulting in (and leaving V8 to collect)
 * fresh memory per page or message, while an idle process gives it back.
 */
export class FreeList<T> {
  private readonly items: T[] = [];
  private taken = false;
  private trim: NodeJS.Timeout | null = null;

  /** `max`: items kept at most (more are dropped); `idleMs`: the list is emptied after this long (ms) without a `take`. */
  constructor(private readonly max: number, private readonly idleMs: number) {}

  /** Items on the list. */
  get size(): number {
    return this.items.length;
  }

  /** Keeps `item` for a later `take`, unless the list is full. Arms the idle timer (never keeps the process alive). */
  put(item: T): void {
    if (this.items.length >= this.max) return;
    this.items.push(item);
    if (this.trim) return;
    this.taken = false;
    this.trim = setInterval(() => {
      if (this.taken) {
        this.taken = false;
        return;
      }
      this.items.length = 0;
      clearInterval(this.trim!);
      this.trim = null;
    }, this.idleMs);
    this.trim.unref();
  }

  /** The most recently kept item, or undefined when the list is empty. */
  take(): T | undefined {
    const item = this.items.pop();
    if (item !== undefined) this.taken = true;
    return item;
  }
}
