import type { useI18n } from '../i18n/i18n.js';

/** What a request or grant allows of file transfer, each direction on its own (R-6.3e). */
export function transferText(t: ReturnType<typeof useI18n>['t'], upload: boolean, download: boolean): string {
  if (upload && download) return t('request.transfer.both');
  if (upload) return t('request.transfer.uploadOnly');
  if (download) return t('request.transfer.downloadOnly');
  return t('request.noFileTransfer');
}
