// The gRPC service every gRPC row calls: one unary method that answers each call with the
// same message and OK, on node:http2's stream API with nothing in between, so that it leaves
// the measured proxy as the slowest part. The benchmark checks each row's answer with a real
// gRPC client (@grpc/grpc-js) before it measures.
// Usage: node bench/peers/grpc-upstream.ts --port PORT --message-bytes N
import http2 from 'node:http2';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string' }, 'message-bytes': { type: 'string' } } });
if (values.port === undefined || values['message-bytes'] === undefined) throw new Error('usage: grpc-upstream.ts --port PORT --message-bytes N');

const messageBytes = Number(values['message-bytes']);
// One length-prefixed gRPC message (flag 0: not compressed) of protobuf field 1, bytes.
const payload = Buffer.alloc(messageBytes, 0x78);
const message = Buffer.concat([Buffer.from([0x0a, ...varint(messageBytes)]), payload]);
const frame = Buffer.alloc(5 + message.length);
frame.writeUInt32BE(message.length, 1);
message.copy(frame, 5);

function varint(value: number): number[] {
  const bytes: number[] = [];
  let rest = value;
  while (rest > 0x7f) {
    bytes.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  bytes.push(rest);
  return bytes;
}

const server = http2.createServer();
server.on('stream', (stream) => {
  stream.on('error', () => undefined);
  // The request's message is read and dropped; the answer goes once it has all come.
  stream.resume();
  stream.on('end', () => {
    if (stream.destroyed) return;
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': '' }));
    stream.end(frame);
  });
});
server.listen(Number(values.port), '127.0.0.1');
