export * from './service-monitoring';
export * from './delivery-metrics';
