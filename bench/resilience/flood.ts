// The noisy neighbour of the resilience benchmark: one client, on a loopback address of its own,
// that opens connections to the system under test and sends each the start of a request head
// and nothing more (slowloris), replacing every connection the system closes.
//
//   node bench/resilience/flood.ts --plan flood.json --out flood-report.json
//
// Prints one JSON line {"ready": {"control": port}} once listening. The control port takes
// `POST /start?at=EPOCH_MS` (time zero, from the client); the flood runs from `fromMs` to `toMs`
// after it, then closes what is left, writes what it saw to --out and exits. Bounded: at most
// `connections` open at once, at most `newPerSecond` opened per second, spread in small steps
// so that the flood is steady rather than bursts, and it exits by itself after --lifetime
// seconds whatever happens.
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { FloodPlan, FloodReport } from './plan.ts';

const { values } = parseArgs({ options: { plan: { type: 'string' }, out: { type: 'string' }, lifetime: { type: 'string', default: '300' } } });
if (values.plan === undefined || values.out === undefined) throw new Error('--plan FILE and --out FILE are required');
const plan = JSON.parse(readFileSync(values.plan, 'utf8')) as FloodPlan;
const outFile = values.out;

const epochNow = (): number => performance.timeOrigin + performance.now();
const head = 'GET /flood HTTP/1.1\r\nHost: flood\r\nUser-Agent: noisy-neighbour\r\nAccept: */*\r\n';

interface Attempt {
  readonly openedAt: number;
  connectedAt: number | undefined;
  closedAt: number | undefined;
  bytes: number;
  firstLine: string;
}

const attempts: Attempt[] = [];
const open = new Set<net.Socket>();
let stopping = false;
let maxOpen = 0;
let tick: NodeJS.Timeout | undefined;

function openOne(): void {
  const attempt: Attempt = { openedAt: epochNow(), connectedAt: undefined, closedAt: undefined, bytes: 0, firstLine: '' };
  attempts.push(attempt);
  const socket = net.connect({ host: plan.host, port: plan.port, localAddress: plan.localAddress });
  open.add(socket);
  maxOpen = Math.max(maxOpen, open.size);
  socket.setNoDelay(true);
  socket.on('connect', () => {
    attempt.connectedAt = epochNow();
    socket.write(head);
  });
  socket.on('data', (chunk: Buffer) => {
    if (attempt.bytes === 0) attempt.firstLine = chunk.toString('latin1').split('\r\n')[0] ?? '';
    attempt.bytes += chunk.length;
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    if (!stopping) attempt.closedAt = epochNow();
    open.delete(socket);
  });
}

/** Every 20 ms, tops the open connections up to `connections`, at most newPerSecond/50 at a time. */
function topUp(): void {
  const room = plan.connections - open.size;
  const allowed = Math.ceil(plan.newPerSecond / 50);
  for (let i = 0; i < Math.min(room, allowed); i++) openOne();
}

function percentile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length))) - 1] as number;
}

function report(): void {
  const closedByServer = attempts.filter((a) => a.closedAt !== undefined);
  const holds = closedByServer.filter((a) => a.connectedAt !== undefined).map((a) => (a.closedAt as number) - (a.connectedAt as number));
  // Closed by the system within a tenth of a second of connecting, without a byte: refused.
  const refused = closedByServer.filter((a) => a.bytes === 0 && a.connectedAt !== undefined && (a.closedAt as number) - a.connectedAt < 100);
  const held = holds.filter((ms) => ms >= 100).sort((a, b) => a - b);
  const answers: Record<string, number> = {};
  for (const a of closedByServer) if (a.firstLine !== '') answers[a.firstLine] = (answers[a.firstLine] ?? 0) + 1;
  const flood: FloodReport = {
    opened: attempts.length,
    connected: attempts.filter((a) => a.connectedAt !== undefined).length,
    refusedAtOnce: refused.length,
    heldThenClosed: held.length,
    heldP50Ms: percentile(held, 0.5),
    heldMaxMs: held.length === 0 ? null : (held[held.length - 1] as number),
    stillOpenAtEnd: attempts.length - closedByServer.length,
    maxOpen,
    answers,
  };
  writeFileSync(outFile, JSON.stringify(flood));
}

function start(at: number): void {
  setTimeout(() => {
    topUp();
    tick = setInterval(topUp, 20);
  }, Math.max(0, at + plan.fromMs - epochNow()));
  setTimeout(
    () => {
      clearInterval(tick);
      stopping = true;
      for (const socket of open) socket.destroy();
      report();
      process.exit(0);
    },
    Math.max(0, at + plan.toMs - epochNow()),
  );
}

const control = http.createServer((req, res) => {
  req.resume();
  const url = new URL(req.url ?? '/', 'http://control');
  const at = Number(url.searchParams.get('at'));
  if (req.method !== 'POST' || url.pathname !== '/start' || !Number.isFinite(at)) {
    res.writeHead(400).end('POST /start?at=EPOCH_MS');
    return;
  }
  res.writeHead(204).end();
  control.close();
  start(at);
});
control.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ ready: { control: (control.address() as AddressInfo).port } })}\n`);
});
setTimeout(() => process.exit(3), Number(values.lifetime) * 1000).unref();
