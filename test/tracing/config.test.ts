/** --otlp-endpoint and --trace-sample: defaults, environment, validation. */
import t from 'tap';
import { loadServeConfig } from '../../src/config/serve.js';

t.test('tracing is off by default', async (t) => {
  const { config } = loadServeConfig([], {});
  t.equal(config.otlpEndpoint, undefined);
  t.equal(config.traceSample, 1);
});

t.test('flags and environment', async (t) => {
  t.equal(loadServeConfig(['--otlp-endpoint', 'http://127.0.0.1:4318'], {}).config.otlpEndpoint, 'http://127.0.0.1:4318');
  t.equal(loadServeConfig([], { NPCD_OTLP_ENDPOINT: 'https://otel.example/v1/traces' }).config.otlpEndpoint, 'https://otel.example/v1/traces');
  t.equal(loadServeConfig([], { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }).config.otlpEndpoint, undefined, 'the generic OTel variable does not turn tracing on');
  t.equal(loadServeConfig(['--trace-sample', '0.25'], {}).config.traceSample, 0.25);
  t.equal(loadServeConfig([], { NPCD_TRACE_SAMPLE: '0' }).config.traceSample, 0);
});

t.test('invalid values name the option', async (t) => {
  t.throws(() => loadServeConfig(['--otlp-endpoint', 'ftp://collector'], {}), { code: 'ERR_CONFIG_INVALID', message: /--otlp-endpoint/ });
  t.throws(() => loadServeConfig(['--otlp-endpoint', 'not a url'], {}), { code: 'ERR_CONFIG_INVALID', message: /--otlp-endpoint/ });
  t.throws(() => loadServeConfig(['--trace-sample', '1.5'], {}), { code: 'ERR_CONFIG_INVALID', message: /trace-sample/ });
  t.throws(() => loadServeConfig(['--trace-sample', '-0.1'], {}), { code: 'ERR_CONFIG_INVALID', message: /trace-sample/ });
});
