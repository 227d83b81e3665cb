-- What an invoice must say of the clinic that issues it (French invoicing
-- law: the seller's postal address, SIRET and intra-community VAT number).
-- All optional: a clinic fills them in its settings; until then the
-- printable invoice says they are missing.

ALTER TABLE clinic_settings
    ADD COLUMN address_line1       text,
    ADD COLUMN address_line2       text,
    ADD COLUMN address_city        text,
    ADD COLUMN address_postal_code text,
    ADD COLUMN address_country     char(2),
    ADD COLUMN siret               text,
    ADD COLUMN vat_number          text;
