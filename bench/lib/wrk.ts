// Runs wrk and reads the JSON line that bench/lua/report.lua prints at the end of a run.
import path from 'node:path';
import type { ChildProcesses } from './processes.ts';

export const luaDir = path.join(import.meta.dirname, '..', 'lua');
const reportMarker = 'BENCH_WRK_JSON ';

export interface WrkReport {
  requests: number;
  durationUs: number;
  bytes: number;
  /** "saturation" or "fixed-rate": which script paced the run. */
  pacing: string;
  latencyUs: { mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
}

function numbersOf<K extends string>(value: unknown, keys: readonly K[], where: string): Record<K, number> {
  if (typeof value !== 'object' || value === null) throw new Error(`wrk report: ${where} is missing`);
  const record = value as Record<string, unknown>;
  const numbers = {} as Record<K, number>;
  for (const key of keys) {
    const n = record[key];
    if (typeof n !== 'number' || !Number.isFinite(n)) throw new Error(`wrk report: ${where}.${key} is not a number`);
    numbers[key] = n;
  }
  return numbers;
}

/** Finds and checks the report line in wrk's output. */
export function parseWrkReport(output: string): WrkReport {
  const line = output.split('\n').find((l) => l.startsWith(reportMarker));
  if (line === undefined) throw new Error(`wrk printed no report line:\n${output.trim()}`);
  const json: unknown = JSON.parse(line.slice(reportMarker.length));
  const totals = numbersOf(json, ['requests', 'durationUs', 'bytes'], 'report');
  const record = json as Record<string, unknown>;
  return {
    ...totals,
    pacing: typeof record.pacing === 'string' ? record.pacing : 'unknown',
    latencyUs: numbersOf(record.latencyUs, ['mean', 'p50', 'p90', 'p99', 'p999', 'max'], 'latencyUs'),
    errors: numbersOf(record.errors, ['connect', 'read', 'write', 'status', 'timeout'], 'errors'),
  };
}

export function requestsPerSecond(report: WrkReport): number {
  return report.durationUs > 0 ? report.requests / (report.durationUs / 1e6) : 0;
}

export function errorCount(report: WrkReport): number {
  const e = report.errors;
  return e.connect + e.read + e.write + e.status + e.timeout;
}

export interface WrkRun {
  url: string;
  connections: number;
  durationS: number;
  /** Requests per second for the fixed-rate script; absent: saturate. */
  rate?: number;
  cores: string;
  logFile: string;
  /** What to send (report.lua shapes it); GETs when absent. */
  request?: 'get' | 'post' | 'keyed-post';
}

/** One wrk thread, as the reference figures used: it leaves the other core to the proxy. */
export async function runWrk(children: ChildProcesses, run: WrkRun): Promise<WrkReport> {
  const script = path.join(luaDir, run.rate === undefined ? 'report.lua' : 'fixed-rate.lua');
  const args = ['-t1', `-c${run.connections}`, `-d${run.durationS}s`, '-s', script, run.url];
  const env = { ...process.env, BENCH_LUA_DIR: luaDir, BENCH_RATE: String(run.rate ?? ''), BENCH_REQUEST: run.request === 'get' ? '' : (run.request ?? '') };
  const wrk = children.start({ name: 'wrk', cores: run.cores, command: 'wrk', args, env, logFile: run.logFile, stdout: 'capture' });
  // wrk stops by itself; the margin covers start-up and closing connections on a busy machine
  const limitMs = (run.durationS + 20) * 1000;
  const timer = setTimeout(() => wrk.signalGroup('SIGKILL'), limitMs);
  const exit = await wrk.exited.finally(() => clearTimeout(timer));
  if (exit.code !== 0) {
    throw new Error(`wrk ended with ${exit.signal ?? `code ${exit.code}`}:\n${wrk.stdout}${wrk.logTail()}`);
  }
  return parseWrkReport(wrk.stdout);
}
