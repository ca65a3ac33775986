// Runs h2load (nghttp2's HTTP/2 load generator) as a gRPC client: unary calls, each a POST of
// one gRPC message with the headers a gRPC client sends, over cleartext HTTP/2 with prior
// knowledge. Its per-request log gives the latency percentiles; its summary, the counts.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ChildProcesses } from './processes.ts';
import type { WrkReport } from './wrk.ts';

/** The method every gRPC row calls. */
export const grpcBenchPath = '/bench.Bench/Call';

export interface H2loadRun {
  url: string;
  /** HTTP/2 connections; each carries `streams` calls at once. */
  connections: number;
  streams: number;
  durationS: number;
  warmupS: number;
  cores: string;
  /** The run's scratch folder: the request body and the per-request log go there. */
  workDir: string;
  logFile: string;
  /** Bytes of the request message. */
  messageBytes: number;
}

/** One gRPC message frame: not compressed, then the protobuf bytes of field 1. */
export function grpcFrame(messageBytes: number): Buffer {
  const message = Buffer.concat([Buffer.from([0x0a, messageBytes]), Buffer.alloc(messageBytes, 0x79)]);
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  return frame;
}

function percentile(sorted: readonly number[], share: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(share * sorted.length))]!;
}

/** The report of one run, in wrk's shape, so that the tables treat both alike. */
export function parseH2load(summary: string, log: string): WrkReport {
  const requests = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(summary);
  const finished = /finished in ([\d.]+)(m?s), /.exec(summary);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(summary);
  if (requests === null || finished === null || codes === null) throw new Error(`h2load printed no summary:\n${summary.trim()}`);
  const durationUs = Number(finished[1]) * (finished[2] === 'ms' ? 1000 : 1_000_000);
  // The log: one line per request, tab-separated: start (µs), status, duration (µs).
  const durations = log
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => Number(line.split('\t')[2]))
    .filter((value) => Number.isFinite(value))
    .sort((a, b) => a - b);
  const mean = durations.reduce((sum, value) => sum + value, 0) / Math.max(durations.length, 1);
  return {
    requests: Number(requests[3]),
    durationUs,
    bytes: 0,
    pacing: 'saturation',
    latencyUs: {
      mean,
      p50: percentile(durations, 0.5),
      p90: percentile(durations, 0.9),
      p99: percentile(durations, 0.99),
      p999: percentile(durations, 0.999),
      max: durations.at(-1) ?? 0,
    },
    errors: {
      connect: 0,
      read: Number(requests[5]),
      write: 0,
      status: Number(requests[4]) + Number(codes[3]) + Number(codes[4]),
      timeout: Number(requests[6]),
    },
  };
}

/** One h2load thread, beside the upstream on the load core. */
export async function runH2load(children: ChildProcesses, run: H2loadRun): Promise<WrkReport> {
  const body = path.join(run.workDir, 'grpc-request.bin');
  writeFileSync(body, grpcFrame(run.messageBytes));
  const log = path.join(run.workDir, `h2load-${process.hrtime.bigint()}.log`);
  const args = [
    '-t1',
    `-c${run.connections}`,
    `-m${run.streams}`,
    `-D${run.durationS}`,
    `--warm-up-time=${run.warmupS}`,
    '-d',
    body,
    '-H',
    'content-type: application/grpc',
    '-H',
    'te: trailers',
    `--log-file=${log}`,
    `${run.url.replace(/\/$/, '')}${grpcBenchPath}`,
  ];
  const h2load = children.start({ name: 'h2load', cores: run.cores, command: 'h2load', args, logFile: run.logFile, stdout: 'capture' });
  const limitMs = (run.warmupS + run.durationS + 20) * 1000;
  const timer = setTimeout(() => h2load.signalGroup('SIGKILL'), limitMs);
  const exit = await h2load.exited.finally(() => clearTimeout(timer));
  if (exit.code !== 0) throw new Error(`h2load ended with ${exit.signal ?? `code ${exit.code}`}:\n${h2load.stdout}${h2load.logTail()}`);
  return parseH2load(h2load.stdout, readFileSync(log, 'utf8'));
}
