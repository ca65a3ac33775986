// The last config reloads, kept in memory for GET /reloads and the admin page: an operator who
// edited a ConfigMap wants to see, in one place, whether and when the sidecar took the edit and,
// if not, why. Metrics count reloads by result; this keeps what each one said.

export type ReloadOutcome = 'success' | 'unchanged' | 'failure';

export interface ReloadEntry {
  /** ISO 8601, UTC. */
  readonly time: string;
  readonly result: ReloadOutcome;
  /** The hash of the file's text (breakwater_config_info's), when it was read. */
  readonly hash?: string;
  /** Why a failed reload was refused: the lines `breakwater validate` prints. */
  readonly problems?: readonly string[];
}

/** A fixed number of the latest reloads, newest first. */
export class ReloadHistory {
  readonly #capacity: number;
  readonly #entries: ReloadEntry[] = [];

  constructor(capacity = 20) {
    this.#capacity = capacity;
  }

  record(result: ReloadOutcome, wallTimeMs: number, detail: { hash?: string; problems?: readonly string[] } = {}): void {
    this.#entries.unshift({ time: new Date(wallTimeMs).toISOString(), result, ...detail });
    if (this.#entries.length > this.#capacity) this.#entries.length = this.#capacity;
  }

  list(): readonly ReloadEntry[] {
    return [...this.#entries];
  }
}
