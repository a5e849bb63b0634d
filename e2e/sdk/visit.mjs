// One visit with the real SDK. Usage: node visit.mjs '<json>' where the JSON holds
// { apiUrl, websiteId, domain, userAgent, referrer, steps: [...] } and each step is one of
// {"pageview": url}, {"track": [name, props]}, {"identify": [userId, props]},
// {"payment": {...}}. Prints the visitor id the SDK used.
import { installBrowser, navigate } from './browser.mjs';

const visit = JSON.parse(process.argv[2]);
const first = visit.steps.find((s) => s.pageview).pageview;
installBrowser({ userAgent: visit.userAgent, href: first, referrer: visit.referrer ?? '' });

const { initDataFast } = await import('datafast');
const datafast = await initDataFast({
  websiteId: visit.websiteId,
  domain: visit.domain,
  apiUrl: visit.apiUrl,
  flushInterval: 60_000,
  maxQueueSize: 1000,
});
if (!datafast.isInitialized()) {
  throw new Error('the SDK did not initialise (it took this browser for a bot or localhost)');
}
for (const step of visit.steps) {
  if (step.pageview) {
    navigate(step.pageview);
    await datafast.trackPageview();
  } else if (step.track) {
    await datafast.track(...step.track);
  } else if (step.identify) {
    await datafast.identify(...step.identify);
  } else if (step.payment) {
    await datafast.trackPayment(step.payment);
  }
}
// Sends the queue in order; the SDK keeps (and retries) whatever the server refused.
await datafast.flush();
const left = JSON.parse(localStorage.getItem('datafast_event_queue') ?? '[]');
if (left.length > 0) {
  throw new Error(`${left.length} events were not accepted: ${JSON.stringify(left)}`);
}
console.log(JSON.stringify({ visitorId: datafast.getVisitorId() }));
process.exit(0);
