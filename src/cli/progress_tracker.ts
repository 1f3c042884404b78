/**
 * Where a run stands, from its graph events: the fraction done (which only
 * ever grows), the elapsed time, an ETA, the rate of the current phase and
 * the time spent in each phase. Pure bookkeeping: the caller passes the
 * clock, so the renderers and the tests share one model of progress.
 *
 * The work of one pass is the decoder layers plus one unit for the tensors
 * outside them (embeddings, final norm, lm_head), in whatever order the
 * pipeline does them: each `layer_done` completes a unit, and `progress`
 * events place the current unit's phase (calibrate → compress → propagate →
 * write, samples within a phase) between them. An independent run repeats
 * that once per pass. Pipelines overlap work (a layer is written while the
 * next is quantized) and report the outside unit first or last, so the raw
 * position can step back; the reported fraction is the largest seen.
 *
 * Every phase sends an event when it starts (`calibrate` and `propagate`
 * with 0 samples done, then one per batch), so the time between two events
 * belongs to the phase of the earlier one.
 *
 * @module
 */

import type { GraphEvent, GraphPhase } from "../graph/events.ts";

/** The phases in the order a layer goes through them. */
const PHASES: readonly GraphPhase[] = ["calibrate", "compress", "propagate", "write"];

/** Phases whose events count samples as they go (compress reports the total at its start). */
const COUNTS_SAMPLES: ReadonlySet<GraphPhase> = new Set(["calibrate", "propagate"]);

/** Where a run stands after an event. */
export interface ProgressSnapshot {
  /** Fraction of the run done, 0…1; never smaller than an earlier snapshot's. */
  readonly fraction: number;
  /** Seconds since the tracker started. */
  readonly elapsed: number;
  /** Seconds left at the average pace so far; null before anything is done. */
  readonly eta: number | null;
  /** The phase of the last progress event, or null (data-free runs have none). */
  readonly phase: GraphPhase | null;
  /** Seconds spent in that phase of that layer so far. */
  readonly phaseElapsed: number;
  /** Work per second: samples/s inside a phase that reports samples, else layers/s. */
  readonly rate: number | null;
  /** What `rate` counts. */
  readonly rateUnit: "samples/s" | "layers/s";
}

/**
 * Tracks one run's progress.
 *
 * @example
 * ```ts
 * import { ProgressTracker } from "./progress_tracker.ts";
 * const t = new ProgressTracker(0);
 * const a = t.update({ type: "layer_done", layer: 0, layers: 3, skipped: false, seconds: 1, bytesRead: 0 }, 1000);
 * a.fraction; // 0.25 (one of three layers plus the outside tensors)
 * a.eta; // 3 (seconds, at one unit per second)
 * ```
 */
export class ProgressTracker {
  readonly #start: number;
  #fraction = 0;
  #pass = 0;
  #passes = 1;
  #unitsDone = 0;
  #unitsTotal = 0;
  #phase: GraphPhase | null = null;
  #phaseKey = "";
  #phaseStart = 0;
  #phaseSamplesAtStart = 0;
  #phaseSeconds = new Map<GraphPhase, number>();
  #lastTime: number;
  #rate: number | null = null;
  #rateUnit: ProgressSnapshot["rateUnit"] = "layers/s";

  /**
   * Starts the clock.
   *
   * @param now the current time in milliseconds (`performance.now()`)
   */
  constructor(now: number = performance.now()) {
    this.#start = now;
    this.#lastTime = now;
  }

  /**
   * Takes one event into account.
   *
   * @param event a graph event (warnings and metrics leave the position alone)
   * @param now the current time in milliseconds
   * @returns where the run stands
   */
  update(event: GraphEvent, now: number = performance.now()): ProgressSnapshot {
    this.#closePhaseTime(now, this.#phase);
    const elapsed = (now - this.#start) / 1000;
    if (event.type === "progress" || event.type === "layer_done") {
      const units = event.layers + 1;
      if (event.type === "progress" && event.pass !== this.#pass) {
        this.#pass = event.pass;
        this.#unitsDone = 0;
      }
      if (event.type === "progress") this.#passes = Math.max(1, event.passes);
      let within = 0;
      if (event.type === "layer_done") {
        this.#unitsDone = Math.min(units, this.#unitsDone + 1);
        this.#unitsTotal++;
        this.#phase = null;
        this.#rate = elapsed > 0 ? this.#unitsTotal / elapsed : null;
        this.#rateUnit = "layers/s";
      } else {
        const key = `${event.pass}/${event.layer}/${event.phase}/${event.round}`;
        if (key !== this.#phaseKey) {
          this.#phaseKey = key;
          this.#phaseStart = now;
          this.#phaseSamplesAtStart = event.samplesDone;
        }
        this.#phase = event.phase;
        const phaseSeconds = (now - this.#phaseStart) / 1000;
        const samples = event.samplesDone - this.#phaseSamplesAtStart;
        const counts = COUNTS_SAMPLES.has(event.phase) && event.samples > 0;
        if (counts && samples > 0 && phaseSeconds > 0) {
          this.#rate = samples / phaseSeconds;
          this.#rateUnit = "samples/s";
        } else {
          this.#rate = elapsed > 0 && this.#unitsTotal > 0 ? this.#unitsTotal / elapsed : null;
          this.#rateUnit = "layers/s";
        }
        const index = Math.max(0, PHASES.indexOf(event.phase));
        const inPhase = counts ? Math.min(1, event.samplesDone / event.samples) : 0;
        within = (index + inPhase) / PHASES.length;
      }
      const raw = (this.#pass * units + Math.min(units, this.#unitsDone + within)) /
        (this.#passes * units);
      this.#fraction = Math.max(this.#fraction, Math.min(1, raw));
    }
    return {
      fraction: this.#fraction,
      elapsed,
      eta: this.#fraction > 0 ? elapsed * (1 - this.#fraction) / this.#fraction : null,
      phase: this.#phase,
      phaseElapsed: this.#phase === null ? 0 : (now - this.#phaseStart) / 1000,
      rate: this.#rate,
      rateUnit: this.#rateUnit,
    };
  }

  /**
   * Seconds spent in each phase so far, over all layers, in phase order.
   *
   * @param now the current time in milliseconds
   * @returns phase → seconds, for the phases that occurred
   */
  phaseSeconds(now: number = performance.now()): Map<GraphPhase, number> {
    this.#closePhaseTime(now, this.#phase);
    const out = new Map<GraphPhase, number>();
    for (const p of PHASES) {
      const s = this.#phaseSeconds.get(p);
      if (s !== undefined) out.set(p, s);
    }
    return out;
  }

  /** Adds the time since the last event to `phase` (the phase that was running). */
  #closePhaseTime(now: number, phase: GraphPhase | null): void {
    if (phase !== null) {
      const s = (now - this.#lastTime) / 1000;
      this.#phaseSeconds.set(phase, (this.#phaseSeconds.get(phase) ?? 0) + s);
    }
    this.#lastTime = now;
  }
}

/**
 * Seconds as a person reads them: `4.2 s`, `3 min 05 s`, `1 h 02 min`.
 *
 * @param seconds a duration
 * @returns the text
 * @example
 * ```ts
 * import { formatDuration } from "./progress_tracker.ts";
 * formatDuration(185); // "3 min 05 s"
 * ```
 */
export function formatDuration(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(s / 3600)} h ${String(Math.floor(s / 60) % 60).padStart(2, "0")} min`;
}
