/**
 * The RxJS operators and types llmc uses, imported from the package's
 * exported `internal/*` modules instead of its entry point.
 *
 * Why: Deno resolves rxjs under the "node" export condition, and rxjs's
 * CommonJS entry (`dist/cjs/index.js`) requires all of its ~300 modules up
 * front. On the 2-core EPYC this costs 110–280 ms of every process's start;
 * the modules below (and what they require) load in 40–60% of that. The
 * objects are the same ones `npm:rxjs` exports (the entry re-exports these
 * files), so Observables from user code interoperate unchanged. rxjs is pinned
 * in deno.json, so these paths do not move under us.
 *
 * @example
 * ```ts ignore
 * import { lastValueFrom, map, range } from "./_rxjs.ts";
 * console.log(await lastValueFrom(range(1, 3).pipe(map((i) => i * 2)))); // 6
 * ```
 *
 * @module
 */

export { Observable } from "rxjs/internal/Observable";
export { Subject } from "rxjs/internal/Subject";
export { lastValueFrom } from "rxjs/internal/lastValueFrom";
export type { MonoTypeOperatorFunction, OperatorFunction } from "rxjs/internal/types";
export { defer } from "rxjs/internal/observable/defer";
export { from } from "rxjs/internal/observable/from";
export { range } from "rxjs/internal/observable/range";
export { concatMap } from "rxjs/internal/operators/concatMap";
export { filter } from "rxjs/internal/operators/filter";
export { finalize } from "rxjs/internal/operators/finalize";
export { last } from "rxjs/internal/operators/last";
export { map } from "rxjs/internal/operators/map";
export { mergeMap } from "rxjs/internal/operators/mergeMap";
export { scan } from "rxjs/internal/operators/scan";
export { tap } from "rxjs/internal/operators/tap";
export { toArray } from "rxjs/internal/operators/toArray";
