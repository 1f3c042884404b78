/**
 * Bookkeeping shared by tensors and batches: which recorded-but-unsubmitted
 * batches use which buffers. Why: queue.writeBuffer and readback copies go
 * onto the queue at once, ahead of any batch still being recorded, so a
 * tensor must not be read, nor its buffer reused, before those batches are
 * submitted.
 *
 * @module
 */

/** What a batch exposes to the registry. */
export interface PendingWork {
  /** True if unsubmitted commands bind this buffer. */
  uses(buffer: GPUBuffer): boolean;
  /** Encodes and submits the recorded commands. */
  submit(): void;
  /** Runs `fn` right after the next submit. */
  afterSubmit(fn: () => void): void;
}

const open = new WeakMap<GPUDevice, Set<PendingWork>>();

/** Marks `work` as holding unsubmitted commands on `device`. */
export function markPending(device: GPUDevice, work: PendingWork): void {
  let set = open.get(device);
  if (!set) open.set(device, set = new Set());
  set.add(work);
}

/** Marks `work` as fully submitted. */
export function clearPending(device: GPUDevice, work: PendingWork): void {
  open.get(device)?.delete(work);
}

/** Submits every pending batch that uses `buffer`, so the queue sees its writes first. */
export function flushWritersOf(device: GPUDevice, buffer: GPUBuffer): void {
  for (const work of [...(open.get(device) ?? [])]) {
    if (work.uses(buffer)) work.submit();
  }
}

/** Calls `fn` once no pending batch uses `buffer` (now, or after their submits). */
export function whenUnused(device: GPUDevice, buffer: GPUBuffer, fn: () => void): void {
  const users = [...(open.get(device) ?? [])].filter((w) => w.uses(buffer));
  if (users.length === 0) return fn();
  let left = users.length;
  for (const work of users) work.afterSubmit(() => --left === 0 && fn());
}
