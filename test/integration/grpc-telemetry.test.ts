// What the access log, the metrics and the traces say of gRPC calls and HTTP/2 requests.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ephemeralAddresses, startBreakwater, type RunningBreakwater } from '../support/breakwater.ts';
import { callUnary, echoClient, grpc, startEchoServer, type EchoServer } from '../support/grpc.ts';
import { h2Request, h2Session } from '../support/h2-client.ts';
import { spanKind, startOtlpReceiver, type OtlpReceiver } from '../support/otlp-receiver.ts';

// The OpenTelemetry SDK reads its settings from process.env: this file runs in a process of
// its own and sets them for its one Breakwater.
const outerOtel = Object.entries(process.env).filter(([name]) => name.startsWith('OTEL_'));

describe('telemetry of gRPC calls and HTTP/2 requests', () => {
  let receiver: OtlpReceiver;
  let echo: EchoServer;
  let proxy: RunningBreakwater;
  let metrics: string;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    for (const [name] of outerOtel) delete process.env[name];
    Object.assign(process.env, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.origin, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' });
    echo = await startEchoServer();
    echo.onUnary((call, callback) => {
      if (call.metadata.get('x-fail').length === 0) return callback(null, call.request);
      // Headers first: the status comes in the trailers alone.
      call.sendMetadata(new grpc.Metadata());
      callback({ code: grpc.status.UNAVAILABLE, details: 'down for maintenance' });
    });
    proxy = await startBreakwater(`${ephemeralAddresses}
upstreams:
  echo: {endpoints: ["http://${echo.address}"], protocol: h2c}
routes:
  - {name: labelled, match: {pathPrefix: /test.Echo/, headers: {x-case: labelled}}, upstream: echo, telemetry: {grpcMethods: true}}
  - {name: plain, match: {pathPrefix: /test.Echo/}, upstream: echo}
  - {name: web, match: {pathPrefix: /web}, upstream: echo}
`);
    const client = echoClient(proxy.url().replace('http://', ''));
    const labelled = new grpc.Metadata();
    labelled.set('x-case', 'labelled');
    const failing = new grpc.Metadata();
    failing.set('x-fail', 'yes');
    expect((await callUnary(client, Buffer.from('ok'), { metadata: labelled })).code).toBe(grpc.status.OK);
    expect((await callUnary(client, Buffer.from('ko'), { metadata: failing })).code).toBe(grpc.status.UNAVAILABLE);
    client.close();
    // A plain HTTP/2 request, which the gRPC server answers with an HTTP error of its own.
    const session = h2Session(proxy.url());
    await h2Request(session, { ':path': '/web' });
    session.close();
    metrics = await (await fetch(`${proxy.telemetryUrl}/metrics`)).text();
    // Stopping flushes the access log and the spans.
    await proxy.stop();
  });

  afterAll(async () => {
    await echo.stop();
    await receiver.close();
    for (const name of Object.keys(process.env)) if (name.startsWith('OTEL_')) delete process.env[name];
    Object.assign(process.env, Object.fromEntries(outerOtel));
  });

  it("names the protocol in the access log, and a gRPC call's status", () => {
    const lines = proxy.log.accessLines();
    expect(lines.find((line) => line.route === 'labelled')).toMatchObject({ protocol: 'grpc', path: '/test.Echo/Unary', status: 200, grpcStatus: 0 });
    expect(lines.find((line) => line.route === 'plain')).toMatchObject({ protocol: 'grpc', status: 200, grpcStatus: 14 });
    const web = lines.find((line) => line.route === 'web');
    expect(web).toMatchObject({ protocol: 'h2c' });
    expect(web).not.toHaveProperty('grpcStatus');
  });

  it('counts gRPC calls by grpc-status, and by service and method only on the route that asks for them', () => {
    expect(metrics).toContain(
      'breakwater_grpc_requests_total{listener="outbound",route="labelled",upstream="echo",grpc_code="OK",grpc_service="test.Echo",grpc_method="Unary"} 1',
    );
    expect(metrics).toContain('breakwater_grpc_requests_total{listener="outbound",route="plain",upstream="echo",grpc_code="UNAVAILABLE",grpc_service="",grpc_method=""} 1');
    expect(metrics).toContain('breakwater_requests_total{listener="outbound",route="plain",upstream="echo",code="200",reason="",protocol="grpc"} 1');
    expect(metrics).toMatch(/breakwater_requests_total\{listener="outbound",route="web",upstream="echo",code="\d+",reason="",protocol="h2c"\} 1/);
    expect(metrics).toContain('breakwater_upstream_attempts_total{route="plain",upstream="echo",outcome="response",code="200",grpc_code="UNAVAILABLE"} 1');
  });

  it("names a gRPC call's spans after its method, with the RPC attributes and its status", () => {
    const spans = receiver.spans();
    const failedServer = spans.find((span) => span.kind === spanKind.server && span.attributes['breakwater.route'] === 'plain')!;
    expect(failedServer.name).toBe('test.Echo/Unary');
    expect(failedServer.attributes).toMatchObject({
      'rpc.system': 'grpc',
      'rpc.service': 'test.Echo',
      'rpc.method': 'Unary',
      'rpc.grpc.status_code': 14,
      'network.protocol.version': '2',
    });
    expect(failedServer.statusCode).toBe(2);
    const failedAttempt = spans.find((span) => span.kind === spanKind.client && span.parentSpanId === failedServer.spanId)!;
    expect(failedAttempt.name).toBe('test.Echo/Unary');
    expect(failedAttempt.attributes).toMatchObject({ 'rpc.system': 'grpc', 'rpc.grpc.status_code': 14, 'error.type': 'UNAVAILABLE' });
    const okServer = spans.find((span) => span.kind === spanKind.server && span.attributes['breakwater.route'] === 'labelled')!;
    expect(okServer.attributes['rpc.grpc.status_code']).toBe(0);
    expect(okServer.statusCode).not.toBe(2);
  });
});
