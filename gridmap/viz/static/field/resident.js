// The resident's QR page: send the report (multipart: category, text, optional photo and phone), then go to the
// receipt. The phone number is sent once and never shown back.
const $ = (id) => document.getElementById(id);
const code = $('place').dataset.code;

$('report-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const err = $('report-error');
  err.hidden = true;
  const photo = $('photo').files[0];
  if (photo && !['image/jpeg', 'image/png', 'image/webp'].includes(photo.type)) {
    err.textContent = '仅支持 JPEG、PNG、WebP 照片 only JPEG, PNG or WebP photos';
    err.hidden = false;
    return;
  }
  const form = new FormData($('report-form'));
  if (!photo) form.delete('photo');
  $('report-submit').disabled = true;
  try {
    const r = await fetch(`/q/${encodeURIComponent(code)}/report`, {method: 'POST', body: form, credentials: 'same-origin'});
    const body = await r.json();
    if (!r.ok) throw new Error(`${body.message}. ${body.fix || ''}`);
    $('report-form').hidden = true;
    $('done').hidden = false;
    $('event-code').textContent = body.event_code;
    $('receipt-link').href = body.receipt;
    setTimeout(() => { location.href = body.receipt; }, 1500);
  } catch (ex) {
    err.textContent = String(ex.message || ex);
    err.hidden = false;
  } finally {
    $('report-submit').disabled = false;
  }
});
