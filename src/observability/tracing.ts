import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import { parseTraceParent } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOffSampler, AlwaysOnSampler, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler, TracerProvider, type Sampler } from '@opentelemetry/sdk-trace';
import type { Config } from '../config/config.js';

/**
 * OpenTelemetry tracing of events, from publish to each instance's hand-off (docs/OPERATIONS.md
 * "Tracing"). One span per publish call (a bulk publish is one span, never one per item) and one
 * per event per receiving instance (never one per subscriber or socket write). The publish span's
 * W3C trace context travels in the event envelope (`traceparent`, docs/CHANNELS.md): a receiving
 * instance's delivery span is its child, so one trace shows the event's whole path, and a service
 * that sets `traceparent` itself (on Redis, in an HTTP header, in an AMQP header) sees its own
 * trace continue. Sampling is the configured sampler's (parent-based by default): an unsampled
 * event costs a non-recording span.
 *
 * The provider is ours, passed where it is used: nothing is registered globally.
 */
export interface EventTracing {
  /** A publish span (PRODUCER), child of `parent` when it is a valid traceparent. */
  startPublish(type: string, source: string, parent: string | undefined, attributes?: Attributes): TracedStep & { readonly traceparent: string };
  /** A delivery span (CONSUMER) on this instance, child of the event's `traceparent` when valid. */
  startDelivery(channel: string, parent: string | undefined): TracedStep;
  /** Sends what is buffered and stops (at shutdown). */
  shutdown(): Promise<void>;
}

export interface TracedStep {
  /** Whether the span is recorded (sampled): worth counting for. */
  readonly recording: boolean;
  /** Ends the span with these attributes; with `error`, its status is ERROR. */
  end(attributes?: Attributes, error?: string): void;
}

/** What an event's hand-off did on an instance (the bus' DeliveryTally, counted while it runs). */
export interface DeliveryCounts {
  readonly reached: number;
  readonly filtered: number;
  readonly withheld: number;
  readonly deferred: number;
}

/** A delivery span's attributes: the event, the topic's local subscribers, and what the hand-off did (when counted). */
export function deliveryAttributes(event: { type: string; id: string }, subscribers: number, tally: DeliveryCounts | undefined): Attributes {
  const attributes: Attributes = { 'tidings.event.type': event.type, 'tidings.event.id': event.id, 'tidings.subscribers': subscribers };
  if (tally) {
    attributes['tidings.subscribers.reached'] = tally.reached;
    attributes['tidings.subscribers.filtered'] = tally.filtered;
    attributes['tidings.subscribers.withheld'] = tally.withheld;
    attributes['tidings.subscribers.deferred'] = tally.deferred;
  }
  return attributes;
}

const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** The W3C traceparent of a span. */
function traceparentOf(span: Span): string {
  const { traceId, spanId, traceFlags } = span.spanContext();
  return `00-${traceId}-${spanId}-${traceFlags.toString(16).padStart(2, '0')}`;
}

function contextOf(parent: string | undefined) {
  if (parent === undefined || !TRACEPARENT.test(parent)) return ROOT_CONTEXT;
  const spanContext = parseTraceParent(parent);
  return spanContext ? trace.setSpanContext(ROOT_CONTEXT, { ...spanContext, isRemote: true }) : ROOT_CONTEXT;
}

function samplerOf(tracing: NonNullable<Config['tracing']>): Sampler {
  switch (tracing.sampler) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(tracing.ratio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(tracing.ratio) });
  }
}

const step = (span: Span): TracedStep => ({
  recording: span.isRecording(),
  end(attributes, error) {
    if (attributes) span.setAttributes(attributes);
    if (error !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
    span.end();
  },
});

export function createEventTracing(tracing: NonNullable<Config['tracing']>, identity: { instanceId: string; version: string }): EventTracing {
  const provider = new TracerProvider({
    sampler: samplerOf(tracing),
    resource: resourceFromAttributes({ 'service.name': tracing.serviceName, 'service.instance.id': identity.instanceId, 'service.version': identity.version }),
    // The endpoint as validated at start; the exporter reads OTEL_EXPORTER_OTLP_(TRACES_)HEADERS and _TIMEOUT itself.
    spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: tracing.endpoint }), scheduledDelayMillis: tracing.exportDelayMs })],
  });
  const tracer: Tracer = provider.getTracer('tidings', identity.version);
  return {
    startPublish(type, source, parent, attributes) {
      const span = tracer.startSpan(
        `publish ${type}`,
        { kind: SpanKind.PRODUCER, attributes: { 'tidings.event.type': type, 'tidings.source': source, ...attributes } },
        contextOf(parent),
      );
      return { ...step(span), traceparent: traceparentOf(span) };
    },
    startDelivery(channel, parent) {
      return step(tracer.startSpan('deliver', { kind: SpanKind.CONSUMER, attributes: { 'messaging.destination.name': channel } }, contextOf(parent)));
    },
    shutdown: () => provider.shutdown(),
  };
}
