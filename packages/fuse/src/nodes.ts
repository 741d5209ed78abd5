/**
 * The FUSE node table: which inodes the kernel holds, and a path for each.
 *
 * The low-level protocol names files by node id; the View names them by
 * path. A node id here *is* the view inode number (the root's is 1 =
 * FUSE_ROOT_ID), so every hard link of a file is one kernel inode with one
 * page cache. For each node the table keeps the kernel's lookup count
 * (nlookup: +1 per entry reply, −n per forget) and its known *links* — the
 * (parent node, name) pairs it was looked up or created under — kept right
 * across rename, unlink and rmdir made through the mount. A node's path is
 * built from its first link whose parent chain reaches the root.
 */

/** FUSE node id of the root directory (FUSE_ROOT_ID). */
export const ROOT_ID = 1;

/** One (parent, name) a node is reachable by. */
export interface NodeLink {
  parent: number;
  name: string;
}

/** A node the kernel knows. */
export interface FuseNode {
  /** Node id = view inode number. */
  readonly id: number;
  /** Kernel lookup count; the node is dropped when it reaches 0. */
  nlookup: number;
  /** Known names, most recent last; empty once every known name is gone (unlinked while open). */
  links: NodeLink[];
  /** Open handles on it (file handles, not directories). */
  open: number;
  /** `mtimeNs:size` as the kernel last saw it: at the last open, or after a write or setattr through the kernel that found it current. An open with the same stamp keeps the kernel's page cache. */
  cacheStamp?: string;
}

/** Node ids → nodes, with path building. Not thread-safe (the event loop only). */
export class NodeTable {
  private readonly nodes = new Map<number, FuseNode>();

  constructor() {
    this.nodes.set(ROOT_ID, { id: ROOT_ID, nlookup: 1, links: [], open: 0 });
  }

  /** The node with id `id`, or undefined when the kernel does not hold it. */
  get(id: number): FuseNode | undefined {
    return this.nodes.get(id);
  }

  /** Number of nodes held (the root included). */
  get size(): number {
    return this.nodes.size;
  }

  /**
   * Path of node `id` ("/" for the root), or null when none of its links
   * reaches the root (all of its names were removed; open handles remain).
   */
  path(id: number): string | null {
    return this.pathVia(id, new Set());
  }

  /** `path` with the nodes being resolved in `busy`: a link back into them (a cycle) is skipped. */
  private pathVia(id: number, busy: Set<number>): string | null {
    if (id === ROOT_ID) return "/";
    const node = this.nodes.get(id);
    if (!node || busy.has(id)) return null;
    busy.add(id);
    try {
      for (let i = node.links.length - 1; i >= 0; i--) {
        const l = node.links[i]!;
        const dir = l.parent === ROOT_ID ? "" : this.pathVia(l.parent, busy);
        if (dir !== null) return `${dir}/${l.name}`;
      }
      return null;
    } finally {
      busy.delete(id);
    }
  }

  /** Path of `name` inside node `parent`, or null when the parent has no path. */
  childPath(parent: number, name: string): string | null {
    const dir = this.path(parent);
    if (dir === null) return null;
    return dir === "/" ? `/${name}` : `${dir}/${name}`;
  }

  /**
   * Records an entry reply: node `id` is `name` in `parent`, and the kernel
   * holds one more reference (FUSE lookup count + 1). For a directory (`dir`)
   * that name replaces any other: a directory has one.
   */
  looked(id: number, parent: number, name: string, dir = false): FuseNode {
    const node = this.held(id);
    if (id !== ROOT_ID) {
      // A directory has one name: the one it was found under last.
      if (dir) node.links = [];
      this.addLink(node, parent, name);
    }
    return node;
  }

  /** Records an entry reply for node `id` without a name (O_TMPFILE; `looked` adds the name): the kernel holds one more reference. */
  held(id: number): FuseNode {
    let node = this.nodes.get(id);
    if (!node) {
      node = { id, nlookup: 0, links: [], open: 0 };
      this.nodes.set(id, node);
    }
    node.nlookup++;
    return node;
  }

  /** As FUSE forget: drops `n` references; the node is forgotten at 0 (never the root). */
  forget(id: number, n: number): void {
    const node = this.nodes.get(id);
    if (!node || id === ROOT_ID) return;
    node.nlookup -= n;
    if (node.nlookup <= 0) this.nodes.delete(id);
  }

  /** `name` in `parent` no longer names node `id` (unlink, rmdir, or replaced by a rename). */
  unlinked(id: number, parent: number, name: string): void {
    const node = this.nodes.get(id);
    if (!node) return;
    node.links = node.links.filter((l) => l.parent !== parent || l.name !== name);
  }

  /** Node `id` was renamed from `name` in `parent` to `newName` in `newParent`. */
  renamed(id: number, parent: number, name: string, newParent: number, newName: string): void {
    const node = this.nodes.get(id);
    if (!node) return;
    node.links = node.links.filter((l) => l.parent !== parent || l.name !== name);
    this.addLink(node, newParent, newName);
  }

  private addLink(node: FuseNode, parent: number, name: string): void {
    const at = node.links.findIndex((l) => l.parent === parent && l.name === name);
    if (at >= 0) node.links.splice(at, 1);
    // Every name the kernel may still use is kept (dropping one would make the file unreachable by it).
    node.links.push({ parent, name });
  }

  /**
   * After the tree was changed from outside (a restore): keeps only the
   * links that still lead to the same node, as `stillThere(parent, name, id)`
   * says, so that paths built afterwards never reach a different file.
   * Returns every link there was (for the caller to invalidate in the kernel).
   */
  revalidate(stillThere: (parent: number, name: string, id: number) => boolean): { id: number; parent: number; name: string }[] {
    const all = this.links();
    for (const n of this.nodes.values()) {
      const ls = n.links;
      let i = 0;
      while (i < ls.length && stillThere(ls[i]!.parent, ls[i]!.name, n.id)) i++;
      if (i < ls.length) n.links = ls.filter((l, k) => k < i || (k > i && stillThere(l.parent, l.name, n.id)));
    }
    return all;
  }

  /** Every node id held, the root included (for invalidation after an outside change). */
  ids(): number[] {
    return [...this.nodes.keys()];
  }

  /** Every (parent, name) known for held nodes (for invalidation after an outside change). */
  links(): { id: number; parent: number; name: string }[] {
    const out: { id: number; parent: number; name: string }[] = [];
    for (const n of this.nodes.values()) for (const l of n.links) out.push({ id: n.id, parent: l.parent, name: l.name });
    return out;
  }
}
