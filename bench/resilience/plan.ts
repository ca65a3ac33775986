// What the fault-injecting upstream and the fixed-rate client are told to do, shared by the
// runner that writes these plans and the two programs that follow them. Times are milliseconds
// since the run's time zero: the client picks it once it is ready and tells the upstreams, so
// all the programs count from the same instant.

/** How one endpoint answers at a given moment. */
export interface Behaviour {
  /** Share of requests answered 503 (0..1). */
  readonly errorRate: number;
  /** Service time: log-normal with this median and shape (sigma of the underlying normal). */
  readonly latency: { readonly medianMs: number; readonly sigma: number };
  /** Rare stalls: this share of requests waits `ms` longer before its answer. */
  readonly stall?: { readonly share: number; readonly ms: number };
  /**
   * A server with a fixed number of workers: at most `concurrent` requests are served at once,
   * up to `queue` more wait for a worker in arrival order, and the rest get 503 at once.
   */
  readonly capacity?: { readonly concurrent: number; readonly queue: number };
  /**
   * Down: connections are accepted and requests read, but nothing is answered. When the window
   * ends, the held requests' connections are cut, as a restarted process would.
   */
  readonly down?: boolean;
}

/** A stretch of time in which some of the base behaviour is replaced. */
export interface Window {
  readonly fromMs: number;
  readonly toMs: number;
  readonly change: Partial<Behaviour>;
  /**
   * Slow recovery: the changed error rate and median latency fade linearly back to the base
   * over the window, instead of ending at once.
   */
  readonly fade?: boolean;
}

export interface EndpointPlan {
  /** e.g. `orders-a`; sent back in `x-served-by` so the client sees who answered. */
  readonly name: string;
  /** The service the endpoint belongs to, e.g. `orders`. */
  readonly service: string;
  readonly base: Behaviour;
  readonly windows: readonly Window[];
}

export interface UpstreamPlan {
  readonly seed: number;
  readonly endpoints: readonly EndpointPlan[];
}

/** One request the upstream received (health checks are counted apart). */
export interface Arrival {
  /** Milliseconds since time zero; negative for the warm-up before it. */
  readonly t: number;
  /** Index into the plan's endpoints. */
  readonly endpoint: number;
  /** The status it was answered with, or 0 when it was never answered (down, or the caller left). */
  readonly status: number;
  /** Set when the plan made this request stall (Behaviour.stall): a hung call, not a slow one. */
  readonly stalled?: true;
  /**
   * Milliseconds after its arrival the caller closed the request without waiting for the
   * answer: a per-try timeout, the loser of a hedge, or a caller that gave up. Absent when the
   * caller waited for the answer.
   */
  readonly leftAfterMs?: number;
}

export interface UpstreamRecords {
  readonly arrivals: readonly Arrival[];
  /** Health-check requests per endpoint name. */
  readonly healthChecks: Readonly<Record<string, number>>;
}

/** A constant request rate from `fromMs` until the next step or the end of the run. */
export interface RateStep {
  readonly fromMs: number;
  readonly perSecond: number;
}

/** One stream of requests of the client: a path on a service, at a schedule of rates. */
export interface ClientRoute {
  /** The service name; also the first path segment (`/orders/123`). */
  readonly service: string;
  /** Origins to send to, taken in turn; one origin when a proxy balances. */
  readonly origins: readonly string[];
  readonly rates: readonly RateStep[];
}

export interface ClientPlan {
  /** The upstream processes' control origins, each told time zero with `POST /start?at=EPOCH_MS`. */
  readonly controls: readonly string[];
  readonly durationMs: number;
  readonly routes: readonly ClientRoute[];
  /** The caller's own limit per request, from its scheduled start. */
  readonly timeoutMs: number;
  /** Connections the caller keeps per origin (host:port), as an HTTP client pool does. */
  readonly connectionsPerOrigin: number;
}

/** What the client writes when it is done. */
export interface ClientReport {
  /** Epoch milliseconds of time zero. */
  readonly startAt: number;
  readonly outcomes: readonly Outcome[];
  /** Requests still unanswered when the client had to stop (0 unless it was cut short). */
  readonly stillInFlight: number;
  /**
   * How late the client sent its requests (ms after they were due), p99 and worst: a client that
   * falls behind its schedule shows a busy machine, not the system under test.
   */
  readonly sendLag: { readonly p99: number; readonly max: number };
}

/** One client request. */
export interface Outcome {
  readonly service: string;
  /** Scheduled start, ms since time zero. Latency counts from here (no coordinated omission). */
  readonly t: number;
  /** From the scheduled start to the end of the response body, or to the failure. */
  readonly latencyMs: number;
  /** The HTTP status, or 0 when no response came (timeout, connection error). */
  readonly status: number;
  /**
   * Who answered: the upstream endpoint (its `x-served-by`), `proxy` for a response the proxy
   * made itself, `none` when nothing answered.
   */
  readonly by: string;
  /** `x-breakwater-reason`, or the client's error code when nothing answered; else empty. */
  readonly reason: string;
  /** `x-breakwater-attempts`: upstream attempts Breakwater made (0: refused before any); -1 when absent. */
  readonly attempts: number;
}

/** A log-normal draw with the given median (Box–Muller on two uniform draws). */
export function logNormal(random: () => number, medianMs: number, sigma: number): number {
  const u = 1 - random();
  const v = random();
  const normal = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  return medianMs * Math.exp(sigma * normal);
}

/** The endpoint's behaviour at `t`: the base, with the windows that cover `t` applied in order. */
export function behaviourAt(plan: EndpointPlan, t: number): Behaviour {
  let behaviour = plan.base;
  for (const window of plan.windows) {
    if (t < window.fromMs || t >= window.toMs) continue;
    if (window.fade !== true) {
      behaviour = { ...behaviour, ...window.change };
      continue;
    }
    // share of the way back to the base
    const progress = (t - window.fromMs) / (window.toMs - window.fromMs);
    const from = { ...behaviour, ...window.change };
    behaviour = {
      ...from,
      errorRate: from.errorRate + (behaviour.errorRate - from.errorRate) * progress,
      latency: { ...from.latency, medianMs: from.latency.medianMs + (behaviour.latency.medianMs - from.latency.medianMs) * progress },
    };
  }
  return behaviour;
}

/** The end of the down window covering `t`, or undefined when the endpoint is up at `t`. */
export function downUntil(plan: EndpointPlan, t: number): number | undefined {
  const window = plan.windows.find((w) => w.change.down === true && t >= w.fromMs && t < w.toMs);
  return window?.toMs;
}

/** Scheduled start times of a route's requests, evenly spaced at each step's rate. */
export function schedule(rates: readonly RateStep[], durationMs: number): number[] {
  const times: number[] = [];
  rates.forEach((step, index) => {
    const end = Math.min(rates[index + 1]?.fromMs ?? durationMs, durationMs);
    if (step.perSecond <= 0) return;
    const gapMs = 1000 / step.perSecond;
    for (let t = step.fromMs; t < end; t += gapMs) times.push(t);
  });
  return times;
}

/** The noisy neighbour's flood of half-sent requests (bench/resilience/flood.ts). */
export interface FloodPlan {
  /** Where the system under test listens. */
  readonly host: string;
  readonly port: number;
  /** The flood's own address, so that the system sees it as another client than the client of record. */
  readonly localAddress: string;
  /** Connections the flood keeps open at once, replacing each one the system closes. */
  readonly connections: number;
  /** Connections opened per second at most. */
  readonly newPerSecond: number;
  /** Milliseconds since time zero. */
  readonly fromMs: number;
  readonly toMs: number;
}

/** What the flood saw of the system. */
export interface FloodReport {
  /** Connections it tried to open. */
  readonly opened: number;
  /** Of which the system accepted (TCP connected). */
  readonly connected: number;
  /** Closed by the system without a byte within 100 ms of connecting: refused on arrival. */
  readonly refusedAtOnce: number;
  /** Held longer, then closed by the system (with an answer or without). */
  readonly heldThenClosed: number;
  readonly heldP50Ms: number | null;
  readonly heldMaxMs: number | null;
  /** Still open when the flood stopped. */
  readonly stillOpenAtEnd: number;
  /** The most connections the flood had open, or trying to open, at once. */
  readonly maxOpen: number;
  /** The status lines of the answers the system sent before closing, with their counts. */
  readonly answers: Readonly<Record<string, number>>;
}
