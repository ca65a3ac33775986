// The soak's client: a fixed rate of requests in a fixed mix over Breakwater's routes, each
// answer judged against what that request should get. Anything else is an unexpected error.
import { randomUUID } from 'node:crypto';
import { Pool } from 'undici';
import { failHeader } from './upstream.ts';

/** What a request is, and so what its answer must be. */
export type RequestKind = 'get' | 'chaos' | 'flaky' | 'charge-new' | 'charge-repeat' | 'charge-plain' | 'order' | 'order-fail';

/** The share of each kind in the mix, out of 1,000. */
const mix: readonly [RequestKind, number][] = [
  ['get', 690],
  ['chaos', 5],
  ['flaky', 100],
  ['charge-new', 60],
  ['charge-repeat', 20],
  ['charge-plain', 20],
  ['order', 100],
  ['order-fail', 5],
];

/** What one interval of the soak saw; counted afresh for each sample. */
export interface ClientInterval {
  sent: number;
  answered: number;
  unexpected: number;
  /** Answers on /flaky that came from the fallback, while its breaker was open or the upstream down. */
  fallbacks: number;
  /** Idempotency-key repeats answered from the store. */
  replays: number;
  /** Latency of each answer in the interval, in milliseconds. */
  latenciesMs: number[];
}

export interface UnexpectedAnswer {
  kind: RequestKind;
  status: number | undefined;
  detail: string;
}

const newInterval = (): ClientInterval => ({ sent: 0, answered: 0, unexpected: 0, fallbacks: 0, replays: 0, latenciesMs: [] });

export class SoakClient {
  readonly #pool: Pool;
  readonly #rate: number;
  #interval = newInterval();
  #sentTotal = 0;
  #inFlight = 0;
  #timer: NodeJS.Timeout | undefined;
  #startedAt = 0;
  /** Keys whose first answer has arrived, with that answer, for repeats. */
  readonly #answeredKeys: { key: string; body: string; answer: string }[] = [];
  /** The first unexpected answers, for the report. */
  readonly unexpectedAnswers: UnexpectedAnswer[] = [];
  /** Requests not sent on time because too many were in flight. */
  lagged = 0;

  constructor(origin: string, rate: number) {
    this.#pool = new Pool(origin, { connections: 64, pipelining: 1 });
    this.#rate = rate;
  }

  start(): void {
    this.#startedAt = performance.now();
    this.#timer = setInterval(() => this.#tick(), 5);
  }

  /** What happened since the last call. */
  takeInterval(): ClientInterval {
    const interval = this.#interval;
    this.#interval = newInterval();
    return interval;
  }

  /** Stops sending and waits for the answers still on their way. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    for (let i = 0; i < 200 && this.#inFlight > 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    await this.#pool.close();
  }

  #tick(): void {
    const due = Math.floor(((performance.now() - this.#startedAt) * this.#rate) / 1000);
    while (this.#sentTotal < due) {
      this.#sentTotal += 1;
      // Beyond this many in flight Breakwater is not keeping up; sending more would only pile up.
      if (this.#inFlight >= 1000) {
        this.lagged += 1;
        continue;
      }
      void this.#send(this.#pick(this.#sentTotal));
    }
  }

  /** Spreads each kind evenly over every thousand requests. */
  #pick(n: number): RequestKind {
    // A fixed permutation of 0..999 (997 is prime to 1,000), so that kinds interleave.
    let slot = (n * 997) % 1000;
    for (const [kind, share] of mix) {
      if (slot < share) return kind === 'charge-repeat' && this.#answeredKeys.length === 0 ? 'charge-new' : kind;
      slot -= share;
    }
    return 'get';
  }

  async #send(kind: RequestKind): Promise<void> {
    this.#interval.sent += 1;
    this.#inFlight += 1;
    const startedAt = performance.now();
    let request: { method: 'GET' | 'POST'; path: string; headers: Record<string, string>; body?: string };
    let repeat: { key: string; body: string; answer: string } | undefined;
    let key: string | undefined;
    switch (kind) {
      case 'get':
        request = { method: 'GET', path: `/api/items?page=${this.#sentTotal % 100}`, headers: { host: 'app' } };
        break;
      case 'chaos':
        request = { method: 'GET', path: '/api/items', headers: { host: 'app', 'x-chaos': 'on' } };
        break;
      case 'flaky':
        request = { method: 'GET', path: '/flaky', headers: { host: 'app' } };
        break;
      case 'charge-new':
        key = randomUUID();
        request = { method: 'POST', path: '/charges', headers: { host: 'app', 'content-type': 'application/json', 'idempotency-key': key }, body: `{"amount":${this.#sentTotal % 5000}}` };
        break;
      case 'charge-repeat':
        repeat = this.#answeredKeys[Math.floor(Math.random() * this.#answeredKeys.length)];
        request = { method: 'POST', path: '/charges', headers: { host: 'app', 'content-type': 'application/json', 'idempotency-key': repeat!.key }, body: repeat!.body };
        break;
      case 'charge-plain':
        request = { method: 'POST', path: '/charges', headers: { host: 'app', 'content-type': 'application/json' }, body: '{"amount":1}' };
        break;
      case 'order':
        request = { method: 'POST', path: '/orders', headers: { host: 'app', 'content-type': 'application/json' }, body: `{"order":${this.#sentTotal}}` };
        break;
      case 'order-fail':
        request = { method: 'POST', path: '/orders', headers: { host: 'app', 'content-type': 'application/json', [failHeader]: '1' }, body: `{"order":${this.#sentTotal}}` };
        break;
    }
    let status: number | undefined;
    let problem: string | undefined;
    try {
      const response = await this.#pool.request({ ...request, headersTimeout: 10_000, bodyTimeout: 10_000 });
      status = response.statusCode;
      const text = await response.body.text();
      const header = (name: string): string | undefined => {
        const value = response.headers[name];
        return Array.isArray(value) ? value[0] : value;
      };
      problem = this.#judge(kind, status, header, text, repeat);
      if (problem === undefined && kind === 'charge-new' && key !== undefined && request.body !== undefined) {
        this.#answeredKeys.push({ key, body: request.body, answer: text });
        // Repeats pick among the last thousand keys.
        if (this.#answeredKeys.length > 1000) this.#answeredKeys.shift();
      }
    } catch (error) {
      problem = error instanceof Error ? error.message : String(error);
    } finally {
      this.#inFlight -= 1;
    }
    this.#interval.answered += 1;
    this.#interval.latenciesMs.push(performance.now() - startedAt);
    if (problem !== undefined) {
      this.#interval.unexpected += 1;
      if (this.unexpectedAnswers.length < 20) this.unexpectedAnswers.push({ kind, status, detail: problem });
    }
  }

  /** Undefined when the answer is what this kind of request should get, else what is wrong. */
  #judge(kind: RequestKind, status: number, header: (name: string) => string | undefined, text: string, repeat: { answer: string } | undefined): string | undefined {
    switch (kind) {
      case 'get':
        return status === 200 ? undefined : `status ${status} (${header('x-breakwater-reason') ?? 'from the upstream'})`;
      case 'chaos':
        return status === 503 && header('x-breakwater-reason') === 'fault_injected' ? undefined : `status ${status}, not an injected 503`;
      case 'flaky':
        if (status !== 200) return `status ${status} (${header('x-breakwater-reason') ?? 'from the upstream'})`;
        if (header('x-soak-fallback') === 'true') this.#interval.fallbacks += 1;
        return undefined;
      case 'charge-new':
      case 'charge-plain':
        if (status !== 201) return `status ${status} (${header('x-breakwater-reason') ?? 'from the upstream'})`;
        return header('idempotent-replayed') === undefined ? undefined : 'a first request answered as a replay';
      case 'charge-repeat':
        if (status !== 201 || header('idempotent-replayed') !== 'true') return `status ${status}, replayed: ${header('idempotent-replayed') ?? 'no'}`;
        this.#interval.replays += 1;
        return text === repeat?.answer ? undefined : 'a replay with another answer than the first';
      case 'order':
        return status === 201 ? undefined : `status ${status} (${header('x-breakwater-reason') ?? 'from the upstream'})`;
      case 'order-fail':
        return status === 503 ? undefined : `status ${status}, where the upstream failed the order`;
    }
  }
}
