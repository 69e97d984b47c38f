export * from './service-pipeline-props';
export * from './fargate-blue-green-pipeline';
export * from './serverless-api-pipeline';
export * from './ec2-blue-green-pipeline';
