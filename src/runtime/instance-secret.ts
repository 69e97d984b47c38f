import * as iam from 'aws-cdk-lib/aws-iam';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { checkNotEmpty } from '../private/validate';

/**
 * A secret an EC2 instance reads at boot from SSM Parameter Store or Secrets Manager and hands to the application as
 * an environment variable. Its value never appears in the template, the launch template or the user data: the
 * instance fetches it with its own role, which may read only the secrets given here, and keeps it in a root-only
 * file that systemd reads.
 */
export class InstanceSecret {
  /**
   * A parameter of SSM Parameter Store, usually a SecureString (`ssm.StringParameter.fromSecureStringParameterAttributes`;
   * give its `encryptionKey` when it is encrypted with a customer managed key, so that the instance may decrypt it).
   */
  public static fromSsmParameter(parameter: ssm.IParameter): InstanceSecret {
    return new InstanceSecret((grantee) => {
      parameter.grantRead(grantee);
      return `aws ssm get-parameter --with-decryption --name '${parameter.parameterName}' --query Parameter.Value --output text`;
    });
  }

  /**
   * A secret of Secrets Manager, whole or one field of its JSON value.
   *
   * @param jsonField the field of the JSON secret to use (default: the whole secret string)
   */
  public static fromSecretsManager(secret: secretsmanager.ISecret, jsonField?: string): InstanceSecret {
    if (jsonField !== undefined) {
      checkNotEmpty('InstanceSecret.fromSecretsManager', 'jsonField', jsonField);
      if (!/^[A-Za-z0-9_.-]+$/.test(jsonField)) {
        throw new Error(`InstanceSecret.fromSecretsManager: 'jsonField' must be letters, digits and _ . -, got '${jsonField}'`);
      }
    }
    return new InstanceSecret((grantee) => {
      secret.grantRead(grantee);
      const read = `aws secretsmanager get-secret-value --secret-id '${secret.secretArn}' --query SecretString --output text`;
      return jsonField === undefined
        ? read
        // One field of the JSON value, with the instance's own Node.js (no jq needed).
        : `${read} | node -e 'let s="";process.stdin.on("data",(d)=>s+=d).on("end",()=>{const v=JSON.parse(s)[process.argv[1]];if(v===undefined){process.exit(3)}process.stdout.write(String(v))})' '${jsonField}'`;
    });
  }

  private constructor(private readonly binder: (grantee: iam.IGrantable) => string) {}

  /**
   * Grants the instance role read access and returns the shell command that prints the secret's value.
   * @internal
   */
  public _bind(grantee: iam.IGrantable): string {
    return this.binder(grantee);
  }
}
