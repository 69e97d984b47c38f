export * from './fargate-blue-green-pipeline';
export * from './serverless-api-pipeline';
