export * from './traffic-shift';
