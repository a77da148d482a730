/** Prometheus metrics, all of them (the service's and the webhook's). Outcome labels are the stable error codes (or `stored`/`superseded`), shared with logs and responses. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  handoffs: Counter<'outcome'>;
  handoffSeconds: Histogram<'outcome'>;
  revocations: Counter<'outcome'>;
  spawnTasks: Gauge;
  webhookAdmissions: Counter<'outcome'>;
  webhookSeconds: Histogram;
}

export function createMetrics(registry = new Registry(), defaults = true): Metrics {
  if (defaults) collectDefaultMetrics({ register: registry, prefix: 'omnisci_handoff_' });
  return {
    registry,
    handoffs: new Counter({
      name: 'omnisci_handoff_handoffs_total',
      help: 'Handoffs by outcome (stored, superseded, deferred, or an error code).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    handoffSeconds: new Histogram({
      name: 'omnisci_handoff_handoff_duration_seconds',
      help: 'Time from request to response of a handoff (verification + store + landing decision).',
      labelNames: ['outcome'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    revocations: new Counter({
      name: 'omnisci_handoff_revocations_total',
      help: 'Revocations by outcome (revoked, absent, or an error code).',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    spawnTasks: new Gauge({
      name: 'omnisci_handoff_spawn_tasks',
      help: "Users' servers this replica is getting ready (asking the hub, or following its progress).",
      registers: [registry],
    }),
    webhookAdmissions: new Counter({
      name: 'omnisci_handoff_webhook_admissions_total',
      help: 'Admission reviews answered by the webhook, by outcome.',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    webhookSeconds: new Histogram({
      name: 'omnisci_handoff_webhook_admission_duration_seconds',
      help: 'Time to answer one admission review (body read to response written).',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
      registers: [registry],
    }),
  };
}
