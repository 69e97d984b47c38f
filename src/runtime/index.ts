export * from './api-route';
export * from './instance-secret';
