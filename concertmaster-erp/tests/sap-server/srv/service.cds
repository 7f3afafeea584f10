using { concertmaster.test as db } from '../db/schema';

// Served at /odata/v4/API_BUSINESS_PARTNER, and at
// /odata/v2/API_BUSINESS_PARTNER through the OData V2 adapter.
@path: 'API_BUSINESS_PARTNER'
service API_BUSINESS_PARTNER {
  // Server-driven paging past 5 records, as S/4HANA pages large reads:
  // V4 answers with @odata.nextLink, V2 with __next.
  // modifiedAt changes on every write: the ETag an update must match.
  @cds.query.limit: { default: 5, max: 5 }
  entity A_BusinessPartner as projection on db.BusinessPartners {
    *, modifiedAt @odata.etag
  } excluding { createdBy, modifiedBy };
}
