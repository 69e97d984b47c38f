export * from './approval';
export * from './artifact-store';
export * from './build-step';
export * from './delivery-pipeline';
export * from './infrastructure-update';
export * from './notifications';
export * from './release';
export * from './smoke-test';
