/**
 * `npm run examples` and the compliance tests find every example at examples/<name>/app.ts; this one's CDK app lives
 * in infra/, next to the service it releases (see README.md).
 */
export { createApp, SelfUpdatingStack } from './infra/app';
