// The practical ceiling of one Node process as a gRPC (HTTP/2) proxy: node:http2 in and out on
// the stream API, a few upstream sessions with requests spread over them, headers, bodies and
// trailers passed on as they come, no policies at all.
// Usage: node bench/peers/node-http2-passthrough.ts --port PORT --upstream http://HOST:PORT
import http2, { type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string' }, upstream: { type: 'string' } } });
if (values.port === undefined || values.upstream === undefined) throw new Error('usage: node-http2-passthrough.ts --port PORT --upstream URL');
const upstream = values.upstream;

// As many upstream connections as a pool of undici's would open for the same load.
const sessions: ClientHttp2Session[] = [];
let next = 0;
function session(): ClientHttp2Session {
  const index = next++ % 4;
  let current = sessions[index];
  if (current === undefined || current.closed || current.destroyed) {
    current = http2.connect(upstream);
    current.on('error', () => undefined);
    sessions[index] = current;
  }
  return current;
}

/** Headers to pass on: everything but the pseudo-headers of the other side. */
function withoutPseudo(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) if (name.charCodeAt(0) !== 58) out[name] = headers[name];
  return out;
}

const server = http2.createServer();
server.on('stream', (stream, headers) => {
  stream.on('error', () => undefined);
  const out = session().request({ ...withoutPseudo(headers), ':method': headers[':method'], ':path': headers[':path'], ':authority': headers[':authority'] });
  out.on('error', () => stream.destroyed || stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR));
  // A client that goes away mid-call (h2load at the end of its run) cancels the upstream call,
  // and nothing more is written to its stream.
  stream.on('close', () => out.destroyed || out.close(http2.constants.NGHTTP2_CANCEL));
  stream.pipe(out);
  out.on('response', (response, flags) => {
    if (stream.destroyed) return;
    const head = { ...withoutPseudo(response), ':status': response[':status'] };
    // A head that ends the stream (Trailers-Only) is passed on as one.
    if ((flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0) {
      stream.respond(head, { endStream: true });
      return;
    }
    stream.respond(head, { waitForTrailers: true });
    let trailers: OutgoingHttpHeaders = {};
    out.on('trailers', (received) => (trailers = withoutPseudo(received)));
    stream.on('wantTrailers', () => stream.destroyed || stream.sendTrailers(trailers));
    out.pipe(stream);
  });
});
server.listen(Number(values.port), '127.0.0.1');
