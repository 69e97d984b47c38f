export * from './service-monitoring';
