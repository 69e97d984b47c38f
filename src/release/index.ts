export * from './release';
export * from './smoke-test';
export * from './traffic-shift';
